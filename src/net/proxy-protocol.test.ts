import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeProxyV1, encodeProxyV2, looksLikeProxyHeader, parseProxyHeader, V2_SIGNATURE } from "./proxy-protocol.js";

test("v1 round trip, IPv4 and IPv6, and mapped IPv4 is unmapped", () => {
  const h4 = encodeProxyV1({ address: "203.0.113.7", port: 51234 }, { address: "192.0.2.1", port: 5222 });
  assert.equal(h4.toString(), "PROXY TCP4 203.0.113.7 192.0.2.1 51234 5222\r\n");
  assert.deepEqual(parseProxyHeader(Buffer.concat([h4, Buffer.from("<stream")])), {
    status: "ok", length: h4.length, version: 1,
    source: { address: "203.0.113.7", port: 51234 }, destination: { address: "192.0.2.1", port: 5222 },
  });
  const h6 = encodeProxyV1({ address: "2001:db8::1", port: 1 }, { address: "::1", port: 5222 });
  assert.equal(h6.toString(), "PROXY TCP6 2001:db8::1 ::1 1 5222\r\n");
  const mapped = encodeProxyV1({ address: "::ffff:198.51.100.2", port: 9 }, { address: "::ffff:127.0.0.1", port: 5222 });
  assert.equal(mapped.toString(), "PROXY TCP4 198.51.100.2 127.0.0.1 9 5222\r\n");
  assert.equal(encodeProxyV1({ address: "1.2.3.4", port: 1 }, { address: "::1", port: 2 }).toString(), "PROXY UNKNOWN\r\n");
});

test("v2 round trip with TLVs skipped by the parser", () => {
  const h = encodeProxyV2({ address: "203.0.113.7", port: 40000 }, { address: "127.0.0.1", port: 5222 }, [{ type: 0x20, value: Buffer.from([1, 0, 0, 0, 0]) }]);
  assert.ok(h.subarray(0, 12).equals(V2_SIGNATURE));
  assert.equal(h[12], 0x21);
  assert.equal(h[13], 0x11);
  const p = parseProxyHeader(h);
  assert.equal(p.status, "ok");
  if (p.status !== "ok") return;
  assert.equal(p.length, h.length);
  assert.deepEqual(p.source, { address: "203.0.113.7", port: 40000 });
  const h6 = encodeProxyV2({ address: "2001:db8:0:0:1::5", port: 7 }, { address: "::1", port: 5269 });
  const p6 = parseProxyHeader(h6);
  assert.equal(p6.status, "ok");
  if (p6.status === "ok") {
    assert.equal(p6.source?.address, "2001:db8::1:0:0:5");
    assert.equal(p6.destination?.address, "::1");
  }
});

test("property: v2 encode/parse round-trips any IPv4 endpoint pair, at any truncation it is incomplete", () => {
  const ip4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
  fc.assert(fc.property(ip4, fc.nat(65535), ip4, fc.nat(65535), (s, sp, d, dp) => {
    const h = encodeProxyV2({ address: s, port: sp }, { address: d, port: dp });
    const p = parseProxyHeader(h);
    assert.deepEqual(p, { status: "ok", length: 28, version: 2, source: { address: s, port: sp }, destination: { address: d, port: dp } });
    for (let i = 1; i < h.length; i++) assert.equal(parseProxyHeader(h.subarray(0, i)).status, "incomplete");
  }), { numRuns: 200, seed: 1 });
});

test("LOCAL and UNKNOWN keep the socket's addresses", () => {
  const local = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  assert.deepEqual(parseProxyHeader(local), { status: "ok", length: 16, version: 2 });
  assert.deepEqual(parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n")), { status: "ok", length: 15, version: 1 });
});

test("garbage PROXY headers are errors, not hangs", () => {
  const bad = [
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
    "PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "PROXY " + "x".repeat(200),
    "<stream:stream>",
  ];
  for (const b of bad) assert.equal(parseProxyHeader(Buffer.from(b)).status, "error", b);
  const badVersion = Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]);
  assert.equal(parseProxyHeader(badVersion).status, "error");
  const huge = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  assert.equal(parseProxyHeader(huge).status, "error");
  const dgram = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x12, 0x00, 0x0c]), Buffer.alloc(12)]);
  assert.equal(parseProxyHeader(dgram).status, "error");
});

test("looksLikeProxyHeader spots both versions from the first bytes", () => {
  assert.ok(looksLikeProxyHeader(Buffer.from("PROX")));
  assert.ok(looksLikeProxyHeader(Buffer.from("PROXY TCP4")));
  assert.ok(looksLikeProxyHeader(V2_SIGNATURE.subarray(0, 5)));
  assert.ok(!looksLikeProxyHeader(Buffer.from("<?xml")));
  assert.ok(!looksLikeProxyHeader(Buffer.from("POST /")));
});
