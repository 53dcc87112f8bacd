import { test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, SessionLog } from "./log.js";

/** A root logger writing to an array of lines, with the production options. */
function capture(level: "info" | "debug"): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (s: string) => void lines.push(s) });
  return { lines, logger };
}

/** The time varies between two calls; everything else must not. */
const untimed = (line: string): string => line.replace(/"time":"[^"]*"/, '"time":"T"');

test("SessionLog writes the same lines as a pino child with the session bindings", () => {
  const a = capture("debug");
  const b = capture("debug");
  const peer = { address: "2001:db8::1", port: 5222 };
  let child = a.logger.child({ sid: "abc2345", peer: "2001:db8::1:5222", listener: "c2s" });
  const of = { id: "abc2345", ip: peer.address, port: peer.port, listener: "c2s", logDomain: undefined as string | undefined, logJid: undefined as string | undefined };
  const log = new SessionLog(b.logger, of);
  const both = (f: (l: { info: SessionLog["info"]; debug: SessionLog["debug"]; warn: SessionLog["warn"]; error: SessionLog["error"] }) => void): void => {
    f(child);
    f(log);
  };
  both((l) => l.debug("session opened"));
  both((l) => l.info({ code: "XPX_ERR_X", condition: "policy-violation", detail: undefined }, "closing"));
  child = child.child({ domain: "example.org" });
  of.logDomain = "example.org";
  both((l) => l.warn({ err: "boom", code: "ECONNRESET" }, "upstream connect failed"));
  child = child.child({ jid: "alice@example.org/phone" });
  of.logJid = "alice@example.org/phone";
  both((l) => l.info("session bound"));
  both((l) => l.error({ password: "secret", stanza: { body: "hi" }, n: 1.5 }, "with \"quotes\" and 100%"));
  both((l) => l.info({ seconds: 12.5 }));
  assert.equal(a.lines.length, 6);
  assert.deepEqual(b.lines.map(untimed), a.lines.map(untimed));
  const last = JSON.parse(b.lines[4]!) as Record<string, unknown>;
  assert.equal(last.sid, "abc2345");
  assert.equal(last.peer, "2001:db8::1:5222");
  assert.equal(last.jid, "alice@example.org/phone");
  assert.equal(last.password, "[redacted]");
});

test("SessionLog below the level writes nothing", () => {
  const { lines, logger } = capture("info");
  const log = SessionLog.fixed(logger, "abc2345", { address: "127.0.0.1", port: 1 }, "c2s");
  log.debug("hidden");
  log.trace({ a: 1 }, "hidden");
  log.info("shown");
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /"sid":"abc2345","peer":"127.0.0.1:1","listener":"c2s","msg":"shown"/);
});

test("pretty lines: local time, level, message, then the fields; colour only when asked", async () => {
  const { prettyLine } = await import("./log.js");
  const lines: string[] = [];
  const logger = createLogger("info", { write: (s: string) => void lines.push(s) });
  logger.info({ sid: "ab3kx7p", jid: "alice@example.org/phone", reason: "rules/a.pfw:3 DROP", n: 3, stanza: { name: "message" } }, "policy action");
  const pretty = prettyLine(lines[0]!);
  assert.match(pretty, /^\d\d:\d\d:\d\d\.\d{3} INFO  policy action sid=ab3kx7p jid=alice@example\.org\/phone reason="rules\/a\.pfw:3 DROP" n=3 stanza=\{"name":"message"\}$/);
  assert.ok(!pretty.includes("pid="));
  assert.match(prettyLine(lines[0]!, true), /\x1b\[32mINFO /);
  assert.equal(prettyLine("not json\n"), "not json");
});
