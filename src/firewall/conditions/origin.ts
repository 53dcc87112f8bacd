// Conditions on the connection the stanza came in on (docs/firewall.md,
// "Conditions"): FROM IP, FROM SUBNET, FROM COUNTRY.
import { cidrBytes, formatIp, ipInNetwork, parseCidr, parseIp } from "../../util/ip.js";
import { fail } from "../param.js";
import { COST_HEAD, COST_LOOKUP } from "../runtime.js";
import { READS_NOTHING } from "../memo.js";
import { defineCondition } from "./define.js";

export type IpSpec = { readonly name: "FROM_IP"; readonly address: string };
export type SubnetSpec = { readonly name: "FROM_SUBNET"; readonly network: string; readonly bits: number };
/** `FROM COUNTRY: …`; `FROM COUNTRY?` has field undefined (country known). */
export type CountrySpec = { readonly name: "FROM_COUNTRY"; readonly field: "code" | "code3" | "continent" | undefined; readonly value: string };

export const FROM_IP = defineCondition<IpSpec>({
  names: ["FROM_IP"],
  param: "required",
  parse(p = "", name) {
    const ip = parseIp(p);
    if (!ip) return fail(`Cannot parse IP address: ${p}`);
    return { name, address: formatIp(ip) };
  },
  // The origin session is the run's own.
  reads: () => READS_NOTHING,
  cost: COST_HEAD,
  compile(spec) {
    const want = spec.address;
    return (s) => {
      const ip = s.ctx.origin?.ip;
      const parsed = ip !== undefined ? parseIp(ip) : undefined;
      return parsed !== undefined && formatIp(parsed) === want;
    };
  },
});

export const FROM_SUBNET = defineCondition<SubnetSpec>({
  names: ["FROM_SUBNET"],
  param: "required",
  parse(p = "", name) {
    let cidr: ReturnType<typeof cidrBytes>;
    try {
      cidr = cidrBytes(parseCidr(p.trim(), { lenient: true }));
    } catch {
      cidr = undefined;
    }
    if (!cidr) return fail(`Cannot parse subnet CIDR: ${p}`);
    return { name, network: formatIp(cidr.network), bits: cidr.bits };
  },
  // The origin session is the run's own.
  reads: () => READS_NOTHING,
  cost: COST_HEAD,
  compile(spec) {
    const network = parseIp(spec.network)!;
    const bits = spec.bits;
    return (s) => {
      const ip = s.ctx.origin?.ip;
      const parsed = ip !== undefined ? parseIp(ip) : undefined;
      return parsed !== undefined && ipInNetwork(parsed, network, bits);
    };
  },
});

export const FROM_COUNTRY = defineCondition<CountrySpec>({
  names: ["FROM_COUNTRY"],
  param: "optional",
  parse(param, name) {
    if (param === undefined) return { name, field: undefined, value: "" };
    const kv = /^\s*(\w+)=(\w+)\s*$/.exec(param);
    if (kv) {
      const field = kv[1]!.toLowerCase();
      if (field !== "code" && field !== "code3" && field !== "continent") return fail(`Unknown country field '${kv[1]}' (code, code3, continent)`);
      return { name, field, value: kv[2]!.toUpperCase() };
    }
    const v = param.trim();
    if (/^[A-Za-z]{3}$/.test(v)) return { name, field: "code3", value: v.toUpperCase() };
    if (/^[A-Za-z]{2}$/.test(v)) return { name, field: "code", value: v.toUpperCase() };
    return fail(`Unknown country code type: '${param}'`);
  },
  needs: "geoip",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const geo = cx.provider("geoip");
    const { field, value } = spec;
    return (s) => {
      const ip = s.ctx.origin?.ip;
      const info = ip !== undefined ? geo.lookup(ip) : undefined;
      if (field === undefined) return info?.code !== undefined && info.code !== "--";
      return info?.[field]?.toUpperCase() === value;
    };
  },
});

export const ORIGIN = [FROM_IP, FROM_SUBNET, FROM_COUNTRY] as const;
