import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { WriteBatch } from "./write-batch.js";

/** A writable that records each write() and cork()/uncork() call; `full` makes write() return false. */
function recorder(full = false): { out: Writable; calls: string[]; chunks: Buffer[] } {
  const calls: string[] = [];
  const chunks: Buffer[] = [];
  const out = new Writable({ highWaterMark: full ? 1 : 1 << 20, write: (_c, _e, cb) => void setImmediate(cb) });
  const write = out.write.bind(out);
  out.write = ((chunk: Buffer) => {
    calls.push(`write ${chunk.toString()}`);
    chunks.push(chunk);
    return write(chunk);
  }) as Writable["write"];
  const cork = out.cork.bind(out);
  const uncork = out.uncork.bind(out);
  out.cork = () => {
    calls.push("cork");
    cork();
  };
  out.uncork = () => {
    calls.push("uncork");
    uncork();
  };
  return { out, calls, chunks };
}

test("back-to-back slices of one chunk merge into one zero-copy write", () => {
  const chunk = Buffer.from("<a/><b/><c/>");
  const batch = new WriteBatch();
  assert.equal(batch.empty, true);
  batch.add(chunk, 0, 4);
  batch.add(chunk, 4, 8);
  batch.add(chunk, 8, 12);
  assert.equal(batch.empty, false);
  const r = recorder();
  assert.equal(batch.flush(r.out), true);
  assert.deepEqual(r.calls, ["write <a/><b/><c/>"]);
  assert.equal(r.chunks[0], chunk); // the chunk itself, not a copy
  assert.equal(batch.empty, true);
  assert.equal(batch.flush(r.out), true);
  assert.equal(r.calls.length, 1);
});

test("gaps and other buffers make separate writes, in order, under one cork", () => {
  const chunk = Buffer.from("<a/><x/><b/><c/>");
  const bounce = Buffer.from("<error/>");
  const other = Buffer.from("<d/>");
  const batch = new WriteBatch();
  batch.add(chunk, 0, 4);
  batch.add(chunk, 8, 12); // <x/> dropped
  batch.add(chunk, 12, 16);
  batch.add(bounce, 0, bounce.length);
  batch.add(other, 0, other.length);
  const r = recorder();
  batch.flush(r.out);
  assert.deepEqual(r.calls, ["cork", "write <a/>", "write <b/><c/>", "write <error/>", "write <d/>", "uncork"]);
  // Reused after a multi-slice flush.
  batch.add(other, 0, 2);
  batch.add(other, 2, 4);
  batch.add(chunk, 0, 4);
  r.calls.length = 0;
  batch.flush(r.out);
  assert.deepEqual(r.calls, ["cork", "write <d/>", "write <a/>", "uncork"]);
});

test("flush reports backpressure", () => {
  const batch = new WriteBatch();
  batch.add(Buffer.from("<a/>"), 0, 4);
  assert.equal(batch.flush(recorder(true).out), false);
  batch.add(Buffer.from("<a/>"), 0, 4);
  batch.add(Buffer.from("<b/>"), 0, 4);
  assert.equal(batch.flush(recorder(true).out), false);
});
