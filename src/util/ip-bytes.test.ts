// IP parsing and CIDR matching as bytes, for the firewall's FROM IP / FROM
// SUBNET. Addresses come from sockets and PROXY headers, so both families matter.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cidrBytes, formatIp, ipInNetwork, parseCidr as parseCidrStrict, parseIp } from "./ip.js";

/** FROM SUBNET's reading: parseCidr, lenient, as bytes; undefined when it fails. */
function parseCidr(s: string): { network: readonly number[]; bits: number } | undefined {
  try {
    return cidrBytes(parseCidrStrict(s, { lenient: true }));
  } catch {
    return undefined;
  }
}

describe("parseIp / formatIp", () => {
  const cases: [string, string | undefined][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["::1", "0:0:0:0:0:0:0:1"],
    ["2001:DB8::8:800:200C:417A", "2001:db8:0:0:8:800:200c:417a"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["[2001:db8::1]", "2001:db8:0:0:0:0:0:1"],
    ["fe80::1%eth0", "fe80:0:0:0:0:0:0:1"],
    ["64:ff9b::192.0.2.1", "64:ff9b:0:0:0:0:c000:201"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["256.0.0.1", undefined],
    ["1.2.3", undefined],
    ["1::2::3", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["12345::", undefined],
    ["example.com", undefined],
  ];
  for (const [input, want] of cases) {
    it(input, () => {
      const ip = parseIp(input);
      assert.equal(ip === undefined ? undefined : formatIp(ip), want);
    });
  }
});

describe("parseCidr / ipInNetwork", () => {
  it("matches prefixes of any length", () => {
    const net = parseCidr("10.1.0.0/16")!;
    assert.ok(ipInNetwork(parseIp("10.1.200.3")!, net.network, net.bits));
    assert.ok(!ipInNetwork(parseIp("10.2.0.1")!, net.network, net.bits));
    const odd = parseCidr("192.0.2.128/25")!;
    assert.ok(ipInNetwork(parseIp("192.0.2.200")!, odd.network, odd.bits));
    assert.ok(!ipInNetwork(parseIp("192.0.2.127")!, odd.network, odd.bits));
    const v6 = parseCidr("2001:db8::/32")!;
    assert.ok(ipInNetwork(parseIp("2001:db8:ffff::1")!, v6.network, v6.bits));
    assert.ok(!ipInNetwork(parseIp("192.0.2.1")!, v6.network, v6.bits));
  });

  it("a v4-mapped network counts its prefix over 128 bits", () => {
    assert.deepEqual(parseCidr("::ffff:10.0.0.0/104"), { network: [10, 0, 0, 0], bits: 8 });
  });

  it("rejects bad prefixes", () => {
    assert.equal(parseCidr("10.0.0.0/33"), undefined);
    assert.equal(parseCidr("10.0.0.0/x"), undefined);
  });
});

describe("one parser for the config and the firewall", () => {
  it("the firewall reads a CIDR as Prosody does: host bits ignored; the config refuses them", () => {
    assert.deepEqual(parseCidr("10.1.2.3/8"), { network: [10, 0, 0, 0], bits: 8 });
    assert.throws(() => parseCidrStrict("10.1.2.3/8"), /host bits/);
  });

  it("both refuse an IPv4 address with leading zeros, as inet_pton (and so Prosody's util.ip) does", () => {
    assert.equal(parseIp("010.0.0.1"), undefined);
    assert.equal(parseCidr("010.0.0.0/8"), undefined);
    assert.throws(() => parseCidrStrict("010.0.0.0/8"));
  });

  it("a v4-mapped network agrees with its IPv4 spelling in both readings", () => {
    const strict = parseCidrStrict("::ffff:10.0.0.0/104");
    assert.deepEqual(strict.network, parseCidrStrict("10.0.0.0/8").network);
    assert.deepEqual(cidrBytes(strict), { network: [10, 0, 0, 0], bits: 8 });
  });
});
