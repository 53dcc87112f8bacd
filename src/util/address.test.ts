// Tests for host:port parsing, IP canonicalisation and CIDR matching, including
// IPv4-mapped IPv6 peers and a property test against a BigInt reference.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseHostPort } from "./address.js";
import { AddressError, CidrSet, canonicalIp, parseCidr } from "./ip.js";

describe("parseHostPort", () => {
  it("parses the accepted forms", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:15222"), { host: "127.0.0.1", port: 15222 });
    assert.deepEqual(parseHostPort("0.0.0.0:5222"), { host: "0.0.0.0", port: 5222 });
    assert.deepEqual(parseHostPort("*:5222"), { host: "0.0.0.0", port: 5222 });
    assert.deepEqual(parseHostPort("[::1]:5269"), { host: "::1", port: 5269 });
    assert.deepEqual(parseHostPort("[::]:5222"), { host: "::", port: 5222 });
    assert.deepEqual(parseHostPort("[2001:DB8::1]:1"), { host: "2001:DB8::1", port: 1 });
    assert.deepEqual(parseHostPort("[fe80::1%eth0]:5222"), { host: "fe80::1%eth0", port: 5222 });
    assert.deepEqual(parseHostPort("xmpp.example.org:65535"), { host: "xmpp.example.org", port: 65535 });
    assert.deepEqual(parseHostPort("localhost:5222"), { host: "localhost", port: 5222 });
    assert.deepEqual(parseHostPort("upstream_1.internal.:5222"), { host: "upstream_1.internal.", port: 5222 });
  });

  it("allows port 0 only when asked", () => {
    assert.throws(() => parseHostPort("127.0.0.1:0"), { name: "AddressError", message: "port 0 is out of range (1..65535)" });
    assert.deepEqual(parseHostPort("127.0.0.1:0", { allowPortZero: true }), { host: "127.0.0.1", port: 0 });
    assert.throws(() => parseHostPort("h:65536", { allowPortZero: true }), { message: "port 65536 is out of range (0..65535)" });
  });

  const bad: [string, string][] = [
    ["", 'must be "host:port", got an empty string'],
    ["localhost", 'missing port (expected "host:port")'],
    ["localhost:", 'missing port (expected "host:port")'],
    [":5222", 'missing host (use "0.0.0.0:port" or "*:port" for all interfaces)'],
    ["::1:5222", 'IPv6 addresses must be in brackets, e.g. "[::1]:5222"'],
    ["[::1]", 'missing port (expected "[v6]:port")'],
    ["[::1]:", 'missing port (expected "[v6]:port")'],
    ["[::1]5222", 'expected ":port" after "]"'],
    ["[::1:5222", 'missing "]" after the IPv6 address'],
    ["[1.2.3.4]:5222", '"1.2.3.4" is not a valid IPv6 address'],
    ["[::g]:5222", '"::g" is not a valid IPv6 address'],
    ["h:-1", 'invalid port "-1"'],
    ["h:5222x", 'invalid port "5222x"'],
    ["h: 5222", 'invalid port " 5222"'],
    ["h:123456", 'invalid port "123456"'],
    ["h:0x10", 'invalid port "0x10"'],
    ["10.0.0.256:5222", '"10.0.0.256" is not a valid IPv4 address'],
    ["010.0.0.1:5222", '"010.0.0.1" is not a valid IPv4 address'],
    ["1.2.3:5222", '"1.2.3" is not a valid IPv4 address'],
    ["bad host:5222", '"bad host" is not a valid hostname or IP address'],
    ["-lead.example:5222", '"-lead.example" is not a valid hostname or IP address'],
    ["a..b:5222", '"a..b" is not a valid hostname or IP address'],
  ];
  for (const [input, message] of bad) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseHostPort(input, { allowPortZero: true }), (err: unknown) => {
        assert.ok(err instanceof AddressError);
        assert.equal(err.message, message);
        return true;
      });
    });
  }
});

describe("canonicalIp", () => {
  const cases: [string, string | null][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
    ["::FFFF:102:304", "::ffff:1.2.3.4"],
    ["::1.2.3.4", "::102:304"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["fe80::1%eth0", "fe80::1"],
    ["1:2:3:4:5:6:7:8:9", null],
    ["1:2:3:4:5:6:7", null],
    ["1:2:3:4:5:6:7:8::", null],
    ["1::2::3", null],
    [":1::", null],
    ["1:::2", null],
    ["1:", null],
    ["12345::", null],
    ["g::1", null],
    ["::ffff:1.2.3", null],
    ["1:2:3:4:5:6:7:1.2.3.4", null],
    ["::1.2.3.4:5", null],
    ["1.2.3.4.5", null],
    ["1.2.3.04", null],
    ["", null],
    ["fe80::1%", null],
    ["example.org", null],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      assert.equal(canonicalIp(input), expected);
    });
  }
});

describe("parseCidr", () => {
  it("parses prefixes and bare addresses", () => {
    const v4 = parseCidr("10.0.0.0/8");
    assert.equal(v4.text, "10.0.0.0/8");
    assert.equal(v4.family, 4);
    assert.equal(v4.prefix, 8);
    assert.equal(parseCidr("192.0.2.7").text, "192.0.2.7/32");
    assert.equal(parseCidr("::1").text, "::1/128");
    assert.equal(parseCidr("2001:DB8::/32").text, "2001:db8::/32");
    assert.equal(parseCidr("2001:DB8::/32").family, 6);
    assert.equal(parseCidr("0.0.0.0/0").text, "0.0.0.0/0");
    assert.equal(parseCidr("::/0").text, "::/0");
    assert.equal(parseCidr("::ffff:10.0.0.0/104").text, "::ffff:10.0.0.0/104");
  });

  it("rejects bad input with a precise message", () => {
    assert.throws(() => parseCidr("10.0.0.1/8"), { message: '"10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)' });
    assert.throws(() => parseCidr("2001:db8::1/32"), {
      message: '"2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)',
    });
    assert.throws(() => parseCidr("10.0.0.0/33"), { message: 'invalid prefix length "/33" (expected 0..32)' });
    assert.throws(() => parseCidr("::/129"), { message: 'invalid prefix length "/129" (expected 0..128)' });
    assert.throws(() => parseCidr("10.0.0.0/"), { message: 'invalid prefix length "/" (expected 0..32)' });
    assert.throws(() => parseCidr("10.0.0.0/08"), { message: 'invalid prefix length "/08" (expected 0..32)' });
    assert.throws(() => parseCidr("10.0.0.0/8/8"), { message: 'invalid prefix length "/8/8" (expected 0..32)' });
    assert.throws(() => parseCidr("fe80::%eth0/64"), { message: '"fe80::%eth0" is not a valid IPv4 or IPv6 address' });
    assert.throws(() => parseCidr("example.org/24"), { message: '"example.org" is not a valid IPv4 or IPv6 address' });
    assert.throws(() => parseCidr(""), AddressError);
  });
});

describe("CidrSet", () => {
  it("matches IPv4 ranges at their edges", () => {
    const set = new CidrSet(["10.0.0.0/8", "192.0.2.7"]);
    assert.equal(set.has("10.0.0.0"), true);
    assert.equal(set.has("10.255.255.255"), true);
    assert.equal(set.has("9.255.255.255"), false);
    assert.equal(set.has("11.0.0.0"), false);
    assert.equal(set.has("192.0.2.7"), true);
    assert.equal(set.has("192.0.2.8"), false);
  });

  it("matches IPv4-mapped IPv6 peers against IPv4 entries, in any spelling", () => {
    const set = new CidrSet(["10.0.0.0/8"]);
    assert.equal(set.has("::ffff:10.1.2.3"), true);
    assert.equal(set.has("::FFFF:10.1.2.3"), true);
    assert.equal(set.has("0:0:0:0:0:ffff:a01:203"), true);
    assert.equal(set.has("::ffff:11.1.2.3"), false);
    // IPv4-compatible (deprecated) and NAT64 forms are not the same address.
    assert.equal(set.has("::10.1.2.3"), false);
    assert.equal(set.has("64:ff9b::10.1.2.3"), false);
  });

  it("matches plain IPv4 peers against IPv4-mapped entries", () => {
    const set = new CidrSet(["::ffff:10.0.0.0/104"]);
    assert.equal(set.has("10.9.9.9"), true);
    assert.equal(set.has("11.0.0.0"), false);
  });

  it("matches IPv6 ranges, full and compressed", () => {
    const set = new CidrSet(["2001:db8::/32", "fe80::/10", "::1"]);
    assert.equal(set.has("2001:db8::1"), true);
    assert.equal(set.has("2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff"), true);
    assert.equal(set.has("2001:db9::"), false);
    assert.equal(set.has("2001:db7:ffff::"), false);
    assert.equal(set.has("febf:ffff::1"), true);
    assert.equal(set.has("fec0::1"), false);
    assert.equal(set.has("fe80::1%eth0"), true);
    assert.equal(set.has("::1"), true);
    assert.equal(set.has("0:0:0:0:0:0:0:1"), true);
    assert.equal(set.has("::2"), false);
    assert.equal(set.has("10.0.0.1"), false);
    assert.equal(set.has("127.0.0.1"), false);
  });

  it("treats IPv4 as part of IPv6 space: ::/0 covers IPv4 peers, 0.0.0.0/0 no IPv6 ones", () => {
    assert.equal(new CidrSet(["::/0"]).has("203.0.113.9"), true);
    const all4 = new CidrSet(["0.0.0.0/0"]);
    assert.equal(all4.has("203.0.113.9"), true);
    assert.equal(all4.has("::ffff:203.0.113.9"), true);
    assert.equal(all4.has("2001:db8::1"), false);
  });

  it("never matches non-addresses and the empty set matches nothing", () => {
    const set = new CidrSet(["0.0.0.0/0", "::/0"]);
    for (const junk of ["", "localhost", "1.2.3", "::ffff:1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/32"]) {
      assert.equal(set.has(junk), false, junk);
    }
    assert.equal(new CidrSet([]).has("10.0.0.1"), false);
  });

  it("exposes its canonical entries and serialises as a list", () => {
    const set = new CidrSet(["2001:DB8::/32", "10.0.0.0/8", "192.0.2.7"]);
    assert.equal(set.size, 3);
    assert.deepEqual(set.entries, ["2001:db8::/32", "10.0.0.0/8", "192.0.2.7/32"]);
    assert.equal(JSON.stringify({ s: set }), '{"s":["2001:db8::/32","10.0.0.0/8","192.0.2.7/32"]}');
  });

  it("throws on an invalid entry", () => {
    assert.throws(() => new CidrSet(["10.0.0.0/8", "10.0.0.0/99"]), AddressError);
  });

  // Reference: compare the top `prefix` bits with BigInt arithmetic.
  const v4Text = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
  const inPrefix = (a: bigint, b: bigint, prefix: number, width: number): boolean =>
    prefix === 0 || a >> BigInt(width - prefix) === b >> BigInt(width - prefix);

  it("agrees with a reference for random IPv4 CIDRs (both spellings)", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (net, ip, prefix) => {
        const masked = prefix === 0 ? 0 : Number((BigInt(net) >> BigInt(32 - prefix)) << BigInt(32 - prefix));
        const set = new CidrSet([`${v4Text(masked)}/${prefix}`]);
        const expected = inPrefix(BigInt(ip), BigInt(masked), prefix, 32);
        assert.equal(set.has(v4Text(ip)), expected);
        assert.equal(set.has(`::ffff:${v4Text(ip)}`), expected);
      }),
      { seed: 5222, numRuns: 500 },
    );
  });

  it("agrees with a reference for random IPv6 CIDRs", () => {
    const groups = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
    const toBig = (g: number[]): bigint => g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n);
    const fromBig = (v: bigint): string =>
      Array.from({ length: 8 }, (_, i) => ((v >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(":");
    fc.assert(
      fc.property(groups, groups, fc.integer({ min: 0, max: 128 }), (netGroups, ipGroups, prefix) => {
        const shift = BigInt(128 - prefix);
        const net = (toBig(netGroups) >> shift) << shift;
        const ip = toBig(ipGroups);
        const set = new CidrSet([`${fromBig(net)}/${prefix}`]);
        assert.equal(set.has(fromBig(ip)), inPrefix(ip, net, prefix, 128));
        // The same address in canonical (compressed) form must give the same answer.
        assert.equal(set.has(canonicalIp(fromBig(ip))!), inPrefix(ip, net, prefix, 128));
      }),
      { seed: 5269, numRuns: 500 },
    );
  });
});
