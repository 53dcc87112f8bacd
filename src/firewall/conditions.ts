// Conditions → closures over the run state (docs/firewall.md, "Conditions"). Each carries a
// cost class so a rule tests head-only conditions first, then lookups, then
// conditions that need the payload tree, and LIMIT last: a rule only takes a
// token when everything else in it matched (docs/firewall.md, "Prosody bugs we fix", 3). Conditions
// needing server state the proxy has no provider for are refused here.
import type { ConditionNode, ConditionSpec, PartMatcher } from "./ast.js";
import type { CompileEnv } from "./compile-env.js";
import type { FirewallProviders, RuleRef } from "./context.js";
import { formatIp, ipInNetwork, parseIp } from "../util/ip.js";
import { bareJid } from "../xmpp/jid.js";
import { POLL_OK, POLL_TABLE_FULL } from "./limits.js";
import { cachedLuaPattern, compileLuaPattern, LuaPattern } from "./lua-pattern.js";
import { COST_HEAD, COST_LOOKUP, COST_PAYLOAD, COST_SIDE_EFFECT, type CompiledCondition, type RunState } from "./runtime.js";
import { getChild, rootOf } from "./stanza-path.js";
import { isConstant, needsPayload } from "./template.js";

type Test = (s: RunState) => boolean;

const EMPTY_ZONE: ReadonlySet<string> = new Set();

const REFUSALS: Readonly<Record<keyof FirewallProviders, string>> = {
  roster:
    "needs the recipient's roster; the proxy only knows rosters it learns from the server's roster results and pushes, and no roster provider is configured (knowledge.rosters is off)",
  sessions:
    "needs the set of online sessions (full JIDs), which the proxy learns from the client connections it carries; the session directory is off (knowledge.sessions)",
  directedPresence: "needs each local session's directed-presence targets; the session directory that learns them is off (knowledge.sessions)",
  groups: "needs the server's shared roster groups (mod_groups); no group source is configured",
  roles: "needs user roles, which live in the server's configuration; no role source is configured",
  admins: "needs the server's admin list; no admin list is configured",
  permissions: "needs Prosody's permission system (module:may), which a proxy cannot evaluate; no permission provider is configured",
  userMarks: "needs per-account marks, which Prosody keeps in its storage; no user-mark store is configured",
  geoip: "needs a GeoIP database; none is configured",
  remoteLists: "needs a remote list provider",
};

function displayName(spec: ConditionSpec): string {
  return spec.name.replace(/_/g, " ");
}

function partTester(m: PartMatcher | undefined): (v: string | undefined) => boolean {
  if (m === undefined) return (v) => v === undefined;
  switch (m.kind) {
    case "exact": {
      const want = m.value;
      return (v) => v === want;
    }
    case "present":
      return (v) => v !== undefined;
    case "pattern": {
      const p = compileLuaPattern(m.lua, { mode: "find" });
      return (v) => v !== undefined && p.test(v);
    }
  }
}

/** Compile one condition; reports and returns undefined when it is refused. */
export function compileCondition(node: ConditionNode, env: CompileEnv, rule: RuleRef): CompiledCondition | undefined {
  const spec = node.spec;
  const refuse = (provider: keyof FirewallProviders): undefined => {
    env.diag.error(node.loc, `${displayName(spec)} refused: it ${REFUSALS[provider]}`);
    return undefined;
  };
  const undefinedRef = (what: string, name: string): undefined => {
    env.diag.error(node.loc, `Unknown ${what}: ${name} (define it with %${what === "rate limit" ? "RATE" : what.toUpperCase()} ${name}: …)`);
    return undefined;
  };
  const p = env.providers;
  let cost = COST_HEAD;
  let test: Test;

  switch (spec.name) {
    case "KIND": {
      const set = new Set(spec.values);
      test = (s) => set.has(s.facts.name);
      break;
    }
    case "TYPE": {
      const set = new Set(spec.values);
      test = (s) => {
        const t = s.facts.stanza.effectiveType;
        return t !== undefined && set.has(t);
      };
      break;
    }
    case "TO":
    case "FROM": {
      const node = partTester(spec.pattern.node);
      const host = partTester(spec.pattern.host);
      const res = spec.pattern.resource !== undefined ? partTester(spec.pattern.resource) : undefined;
      const to = spec.name === "TO";
      test = (s) => {
        const parts = to ? s.facts.toParts : s.facts.fromParts;
        return node(parts.node) && host(parts.host) && (res === undefined || res(parts.resource));
      };
      break;
    }
    case "TO_EXACTLY":
    case "FROM_EXACTLY": {
      const to = spec.name === "TO_EXACTLY";
      const t = spec.value;
      if (isConstant(t)) {
        const v = t.source;
        test = (s) => (to ? s.facts.to : s.facts.from) === v;
      } else {
        if (needsPayload(t)) cost = COST_PAYLOAD;
        test = (s) => {
          const actual = to ? s.facts.to : s.facts.from;
          return actual !== undefined && actual === s.facts.expand(t);
        };
      }
      break;
    }
    case "TO_SELF":
      test = (s) => s.facts.toAttr === undefined;
      break;
    case "FROM_FULL_JID":
      test = (s) => s.facts.fromParts.resource !== undefined;
      break;
    case "TO_FULL_JID": {
      const sessions = p.sessions;
      if (!sessions) return refuse("sessions");
      cost = COST_LOOKUP;
      test = (s) => {
        const to = s.facts.to;
        return to !== undefined && sessions.isOnline(to);
      };
      break;
    }
    case "ENTERING":
    case "LEAVING": {
      let zone: ReadonlySet<string> | undefined;
      if (spec.zone === "$local") {
        zone = env.localHosts;
        if (!zone) {
          env.diag.error(
            node.loc,
            `${displayName(spec)} refused: the $local zone is the server's local domains, and none are configured ` +
              "(`hosts:` in the configuration; check-rules and trace: --host DOMAIN)",
          );
          return undefined;
        }
      } else {
        zone = env.defs.zones.get(spec.zone);
        if (!zone) {
          // Prosody compiles a zone it does not know as an empty one.
          env.diag.warn(node.loc, `zone '${spec.zone}' is not defined (above, or in an earlier file): it is empty, so ${displayName(spec)} never holds, as in Prosody`);
          zone = EMPTY_ZONE;
        }
      }
      const z = zone;
      const inZone = (full: string | undefined, host: string | undefined, bare: string | undefined): boolean =>
        (host !== undefined && z.has(host)) || (full !== undefined && z.has(full)) || (bare !== undefined && z.has(bare));
      const entering = spec.name === "ENTERING";
      test = (s) => {
        const f = s.facts;
        const dest = inZone(f.to, f.toParts.host, f.bareTo);
        const src = inZone(f.from, f.fromParts.host, f.bareFrom);
        return entering ? dest && !src : src && !dest;
      };
      break;
    }
    case "IN_ROSTER":
    case "IN_ROSTER_GROUP": {
      const roster = p.roster;
      if (!roster) return refuse("roster");
      cost = COST_LOOKUP;
      const entry = (s: RunState) => {
        const f = s.facts;
        const owner = f.bareTo;
        const contact = f.bareFrom;
        if (f.toParts.node === undefined || owner === undefined || contact === undefined) return undefined;
        return roster.entry(owner, contact);
      };
      if (spec.name === "IN_ROSTER") {
        const expect = spec.expect;
        test = (s) => (entry(s) !== undefined) === expect;
      } else {
        const group = spec.group;
        test = (s) => entry(s)?.groups.includes(group) ?? false;
      }
      break;
    }
    case "SUBSCRIBED":
    case "PENDING_SUBSCRIPTION_FROM_SENDER": {
      const roster = p.roster;
      if (!roster) return refuse("roster");
      cost = COST_LOOKUP;
      if (spec.name === "SUBSCRIBED") {
        // README/vNew meaning: the recipient is subscribed to the sender (subscription to/both).
        test = (s) => {
          const f = s.facts;
          if (f.bareTo === f.bareFrom) return true;
          if (f.toParts.node === undefined || f.bareTo === undefined || f.bareFrom === undefined) return false;
          const sub = roster.entry(f.bareTo, f.bareFrom)?.subscription;
          return sub === "to" || sub === "both";
        };
      } else {
        const pendingIn = roster.pendingIn?.bind(roster);
        if (!pendingIn) {
          env.diag.error(node.loc, `${displayName(spec)} refused: it needs pending inbound subscription requests, which the configured roster provider does not track`);
          return undefined;
        }
        test = (s) => {
          const f = s.facts;
          if (f.bareTo === f.bareFrom) return true;
          if (f.toParts.node === undefined || f.bareTo === undefined || f.bareFrom === undefined) return false;
          return pendingIn(f.bareTo, f.bareFrom);
        };
      }
      break;
    }
    case "SENT_DIRECTED_PRESENCE_TO_SENDER": {
      const dp = p.directedPresence;
      if (!dp) return refuse("directedPresence");
      cost = COST_LOOKUP;
      // The README's meaning: the recipient has sent directed presence to the sender.
      test = (s) => {
        const { to, from } = s.facts;
        return to !== undefined && from !== undefined && dp.hasSentTo(to, from);
      };
      break;
    }
    case "PAYLOAD": {
      // Prosody's get_child(nil, ns): a direct child whose recorded namespace
      // is ns. A child in the stanza's own namespace has none recorded, so
      // `PAYLOAD: jabber:client` never matches a plain <body/> (stanza-path.ts).
      const want = spec.ns;
      cost = COST_PAYLOAD;
      test = (s) => {
        const f = s.facts;
        const st = f.stanza;
        // The first child is known without parsing; only look further when it differs.
        if (!f.modified) {
          if (st.firstChildName === undefined) return false;
          const first = st.firstChildXmlns;
          if ((first === st.xmlns ? undefined : first) === want) return true;
        }
        const tree = f.tree();
        if (!tree) return false;
        return getChild(rootOf(tree, st.xmlns), { ns: want, name: undefined }, st.xmlns, f.treeForm) !== undefined;
      };
      break;
    }
    case "INSPECT": {
      cost = COST_PAYLOAD;
      const path = spec.path;
      const t = spec.test;
      // Attribute reads of the stanza itself need only the head.
      const headOnly = path.steps.length === 0 && (t.kind === "exists" || !needsPayload(t.value));
      if (headOnly) cost = COST_HEAD;
      const read = (s: RunState): string | object | undefined => s.facts.find(path);
      switch (t.kind) {
        case "exists":
          test = (s) => read(s) !== undefined;
          break;
        case "equals": {
          const v = t.value;
          test = (s) => read(s) === s.facts.expand(v);
          break;
        }
        case "contains": {
          const v = t.value;
          test = (s) => {
            const r = read(s);
            return (typeof r === "string" ? r : "").includes(s.facts.expand(v));
          };
          break;
        }
        case "matches": {
          const fixed = t.pattern !== undefined ? compileLuaPattern(t.pattern, { mode: "match" }) : undefined;
          const v = t.value;
          test = (s) => {
            const r = read(s);
            const text = typeof r === "string" ? r : "";
            if (fixed) return fixed.test(text);
            // Built per stanza. Where Prosody's string.match would raise an
            // error (the stanza is then lost), the condition is false.
            const p = cachedLuaPattern(s.facts.expand(v), "match");
            return p instanceof LuaPattern && p.test(text);
          };
          break;
        }
      }
      break;
    }
    case "FROM_ADMIN":
    case "TO_ADMIN":
    case "FROM_ADMIN_OF":
    case "TO_ADMIN_OF": {
      const admins = p.admins;
      if (!admins) return refuse("admins");
      env.diag.warn(node.loc, `${displayName(spec)} is deprecated (removed from newer mod_firewall); prefer FROM ROLE / TO ROLE`);
      cost = COST_LOOKUP;
      const from = spec.name.startsWith("FROM");
      const fixedHost = spec.name === "FROM_ADMIN_OF" || spec.name === "TO_ADMIN_OF" ? spec.host : undefined;
      test = (s) => {
        const jid = from ? s.facts.bareFrom : s.facts.bareTo;
        const host = fixedHost ?? s.facts.currentHost;
        return jid !== undefined && host !== undefined && admins.isAdmin(jid, host);
      };
      break;
    }
    case "FROM_GROUP":
    case "TO_GROUP": {
      const groups = p.groups;
      if (!groups) return refuse("groups");
      cost = COST_LOOKUP;
      const from = spec.name === "FROM_GROUP";
      const group = spec.group;
      test = (s) => {
        const jid = from ? s.facts.bareFrom : s.facts.bareTo;
        return jid !== undefined && groups.contains(group, jid);
      };
      break;
    }
    case "CROSSING_GROUPS": {
      const groups = p.groups;
      if (!groups) return refuse("groups");
      cost = COST_LOOKUP;
      const names = spec.groups;
      test = (s) => {
        const { bareTo, bareFrom } = s.facts;
        return !names.some(
          (g) => bareTo !== undefined && bareFrom !== undefined && groups.contains(g, bareTo) && groups.contains(g, bareFrom),
        );
      };
      break;
    }
    case "MAY": {
      const perms = p.permissions;
      if (!perms) return refuse("permissions");
      cost = COST_LOOKUP;
      const permission = spec.permission;
      test = (s) => perms.may(permission, { jid: s.ctx.origin?.jid, host: s.facts.currentHost });
      break;
    }
    case "TO_ROLE":
    case "FROM_ROLE": {
      const roles = p.roles;
      if (!roles) return refuse("roles");
      cost = COST_LOOKUP;
      const from = spec.name === "FROM_ROLE";
      const role = spec.role;
      test = (s) => {
        const jid = from ? s.facts.bareFrom : s.facts.bareTo;
        const host = s.facts.currentHost;
        return jid !== undefined && host !== undefined && roles.roleOf(jid, host) === role;
      };
      break;
    }
    case "TIME": {
      const ranges = spec.ranges;
      const days = new Set(spec.days);
      const localTime = env.localTime;
      test = () => {
        const t = localTime();
        if (days.has(t.weekday)) return true;
        const m = t.hour * 60 + t.minute;
        return ranges.some((r) => (r.start <= r.end ? m >= r.start && m < r.end : m >= r.start || m < r.end));
      };
      break;
    }
    case "DAY": {
      const days = new Set(spec.days);
      const localTime = env.localTime;
      test = () => days.has(localTime().weekday);
      break;
    }
    case "LIMIT": {
      const rate = env.defs.rates.get(spec.rate);
      if (!rate) return undefinedRef("rate limit", spec.rate);
      cost = COST_SIDE_EFFECT;
      const on = spec.on;
      if (on === undefined) {
        const throttle = env.single(spec.rate, rate.def);
        test = (s) => !throttle.poll(s.now);
      } else {
        const multi = env.multi(spec.rate, rate.def);
        const rateName = spec.rate;
        test = (s) => {
          const r = multi.poll(s.facts.expand(on), s.now);
          if (r === POLL_TABLE_FULL) {
            s.logs.push({
              level: "warn",
              message: `Multirate '${rateName}' has hit its maximum number of active throttles (${multi.entries}), denying new events`,
              rule,
            });
          }
          return r !== POLL_OK;
        };
      }
      break;
    }
    case "ORIGIN_MARKED": {
      const { mark, withinSeconds } = spec;
      test = (s) => {
        const at = s.ctx.origin?.marks.get(mark);
        if (at === undefined) return false;
        return withinSeconds === undefined || s.now - at < withinSeconds * 1000;
      };
      break;
    }
    case "USER_MARKED": {
      const store = p.userMarks;
      if (!store) return refuse("userMarks");
      cost = COST_LOOKUP;
      const { mark, withinSeconds } = spec;
      test = (s) => {
        const o = s.ctx.origin;
        if (o?.type !== "c2s" || o.jid === undefined) return false;
        const user = bareJid(o.jid);
        const at = user !== undefined ? store.get(user, mark) : undefined;
        if (at === undefined) return false;
        return withinSeconds === undefined || s.now - at < withinSeconds * 1000;
      };
      break;
    }
    case "CHECK_LIST": {
      const list = env.defs.lists.get(spec.list);
      if (!list) return undefinedRef("list", spec.list);
      cost = needsPayload(spec.value) ? COST_PAYLOAD : COST_LOOKUP;
      const v = spec.value;
      test = (s) => list.contains(s.facts.expand(v));
      break;
    }
    case "SCAN": {
      const search = env.defs.searches.get(spec.search);
      if (!search) return undefinedRef("search", spec.search);
      const pattern = env.defs.patterns.get(spec.pattern);
      if (!pattern) return undefinedRef("pattern", spec.pattern);
      const list = env.defs.lists.get(spec.list);
      if (!list) return undefinedRef("list", spec.list);
      cost = COST_PAYLOAD;
      const name = spec.search;
      const path = search.spec.path;
      test = (s) => {
        const text = s.facts.search(name, path);
        for (const token of pattern.tokens(text)) if (list.contains(token)) return true;
        return false;
      };
      break;
    }
    case "COUNT": {
      const search = env.defs.searches.get(spec.search);
      if (!search) return undefinedRef("search", spec.search);
      const pattern = env.defs.patterns.get(spec.pattern);
      if (!pattern) return undefinedRef("pattern", spec.pattern);
      cost = COST_PAYLOAD;
      const { op, value } = spec;
      const name = spec.search;
      const path = search.spec.path;
      test = (s) => {
        const n = pattern.count(s.facts.search(name, path));
        switch (op) {
          case ">":
            return n > value;
          case "<":
            return n < value;
          case ">=":
            return n >= value;
          case "<=":
            return n <= value;
          case "==":
            return n === value;
        }
      };
      break;
    }
    case "FROM_IP": {
      const want = spec.address;
      test = (s) => {
        const ip = s.ctx.origin?.ip;
        const parsed = ip !== undefined ? parseIp(ip) : undefined;
        return parsed !== undefined && formatIp(parsed) === want;
      };
      break;
    }
    case "FROM_SUBNET": {
      const network = parseIp(spec.network)!;
      const bits = spec.bits;
      test = (s) => {
        const ip = s.ctx.origin?.ip;
        const parsed = ip !== undefined ? parseIp(ip) : undefined;
        return parsed !== undefined && ipInNetwork(parsed, network, bits);
      };
      break;
    }
    case "FROM_COUNTRY": {
      const geo = p.geoip;
      if (!geo) return refuse("geoip");
      cost = COST_LOOKUP;
      const { field, value } = spec;
      test = (s) => {
        const ip = s.ctx.origin?.ip;
        const info = ip !== undefined ? geo.lookup(ip) : undefined;
        if (field === undefined) return info?.code !== undefined && info.code !== "--";
        return info?.[field]?.toUpperCase() === value;
      };
      break;
    }
  }

  const negated = node.negated;
  return {
    loc: node.loc,
    text: node.text,
    cost,
    test: negated ? (s) => !test(s) : test,
  };
}
