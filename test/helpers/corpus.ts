// The hostile-input corpus (test/corpus/cases.json): loading, delivering a
// case's bytes the way its manifest says, and the exact expectations shared
// by the replay tests (fake upstream and real Prosody).

import { readFileSync } from "node:fs";
import { ERRORS, type ErrorCode } from "../../src/errors.js";
import type { RunningProxy } from "../../src/app.js";
import { eventually, type RawClient } from "./raw-client.js";

export interface MetricExpectation {
  name: string;
  labels: Record<string, string>;
  delta: number;
}

export interface CorpusCase {
  id: string;
  file: string;
  listener: "plain" | "trusted-proxy" | "direct-tls";
  /** drip-body: the stream header whole, then one byte per read. */
  delivery: "whole" | "drip" | "drip-body" | "split-multibyte";
  source: string;
  why: string;
  expect:
    | { outcome: "stream-error"; condition: string; code: ErrorCode | null; /** when the proxy says more than the catalogue text */ text?: string }
    | { outcome: "forwarded-unchanged"; withProsody?: { outcome: "upstream-stream-error"; condition: string } }
    | { outcome: "closed-silently"; code: ErrorCode | null; /** a TLS alert record is the only reply allowed (direct-TLS ports) */ tlsAlert?: boolean };
  metrics: MetricExpectation[];
  prosody?: boolean;
  pending?: string;
}

export interface Corpus {
  config: Record<string, unknown>;
  cases: CorpusCase[];
}

const DIR = new URL("../corpus/", import.meta.url);

export function loadCorpus(): Corpus {
  return JSON.parse(readFileSync(new URL("cases.json", DIR), "utf8")) as Corpus;
}

export function caseBytes(c: CorpusCase): Buffer {
  return readFileSync(new URL(c.file, DIR));
}

const NS = "urn:ietf:params:xml:ns:xmpp-streams";

/** The exact stream error and close the proxy must send for `code` (RFC 6120 §4.9.2). */
export function expectedStreamError(condition: string, code: ErrorCode, text?: string): string {
  return `<stream:error><${condition} xmlns='${NS}'/><text xmlns='${NS}'>${text ?? ERRORS[code].message}</text></stream:error></stream:stream>`;
}

/** The proxy's own stream header, sent when the server never sent one (RFC 6120 §4.9.1.2). */
export const PROXY_HEADER_RE = /^<\?xml version='1\.0'\?><stream:stream xmlns='jabber:client' xmlns:stream='http:\/\/etherx\.jabber\.org\/streams' id='[0-9a-f]+'( from='[^']*')? version='1\.0'>/;

/** Sum of a metric's values whose labels include `labels` (after collect hooks run). */
export async function metricSum(p: RunningProxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = await p.metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  return m.values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
}

/** Read boundaries: after the lead byte of every multi-byte UTF-8 character. */
export function multibyteSplits(bytes: Buffer): number[] {
  const cuts: number[] = [];
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0xc0) cuts.push(i + 1);
  return cuts;
}

/**
 * Write a case's bytes. For drip and split deliveries each part is written
 * only after the proxy has read the previous one (its bytes-in counter says
 * so), so every boundary really is a read boundary; stops early if the proxy
 * closes the connection.
 */
export async function deliver(c: CorpusCase, bytes: Buffer, client: RawClient, proxy: RunningProxy, listener: string): Promise<void> {
  if (c.delivery === "whole") {
    client.write(bytes);
    return;
  }
  let cuts: number[];
  if (c.delivery === "split-multibyte") cuts = multibyteSplits(bytes);
  else {
    const from = c.delivery === "drip-body" ? bytes.indexOf(">", bytes.indexOf("<stream:stream")) + 1 : 1;
    if (from <= 0) throw new Error(`${c.id}: no stream header to send whole`);
    cuts = Array.from({ length: bytes.length - from }, (_, i) => from + i);
  }
  if (cuts.length === 0) throw new Error(`${c.id}: nothing to split`);
  const base = await metricSum(proxy, "xmpp_guard_bytes_total", { listener, direction: "in" });
  let prev = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (client.socket.destroyed || client.socket.readableEnded) return;
    client.write(bytes.subarray(prev, cut));
    prev = cut;
    let gone = false;
    await eventually(async () => {
      gone = client.socket.destroyed || client.socket.readableEnded;
      return gone || (await metricSum(proxy, "xmpp_guard_bytes_total", { listener, direction: "in" })) - base >= cut;
    }, 5000, `${c.id}: proxy read ${cut} bytes`);
    if (gone) return;
  }
}
