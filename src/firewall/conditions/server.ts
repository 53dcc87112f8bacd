// Conditions on the server's own configuration (docs/firewall.md, "What is
// refused, and why"): admins, shared roster groups, roles, permissions. A
// proxy only has them through a configured provider.
import { fail } from "../param.js";
import { COST_LOOKUP } from "../runtime.js";
import { defineCondition, type ConditionCompile, type Test } from "./define.js";

export type AdminSpec = { readonly name: "FROM_ADMIN" | "TO_ADMIN" };
export type AdminOfSpec = { readonly name: "FROM_ADMIN_OF" | "TO_ADMIN_OF"; readonly host: string };
export type GroupSpec = { readonly name: "FROM_GROUP" | "TO_GROUP"; readonly group: string };
export type CrossingSpec = { readonly name: "CROSSING_GROUPS"; readonly groups: readonly string[] };
export type MaySpec = { readonly name: "MAY"; readonly permission: string };
export type RoleSpec = { readonly name: "TO_ROLE" | "FROM_ROLE"; readonly role: string };

function adminTest(name: string, fixedHost: string | undefined, cx: ConditionCompile): Test {
  const admins = cx.provider("admins");
  cx.warn(`${cx.display} is deprecated (removed from newer mod_firewall); prefer FROM ROLE / TO ROLE`);
  const from = name.startsWith("FROM");
  return (s) => {
    const jid = from ? s.facts.bareFrom : s.facts.bareTo;
    const host = fixedHost ?? s.facts.currentHost;
    return jid !== undefined && host !== undefined && admins.isAdmin(jid, host);
  };
}

export const ADMIN = defineCondition<AdminSpec>({
  names: ["FROM_ADMIN", "TO_ADMIN"],
  param: "none",
  needs: "admins",
  cost: COST_LOOKUP,
  compile: (spec, cx) => adminTest(spec.name, undefined, cx),
});

export const ADMIN_OF = defineCondition<AdminOfSpec>({
  names: ["FROM_ADMIN_OF", "TO_ADMIN_OF"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, host: p }),
  needs: "admins",
  cost: COST_LOOKUP,
  compile: (spec, cx) => adminTest(spec.name, spec.host, cx),
});

export const GROUP = defineCondition<GroupSpec>({
  names: ["FROM_GROUP", "TO_GROUP"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, group: p }),
  needs: "groups",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const groups = cx.provider("groups");
    const from = spec.name === "FROM_GROUP";
    const group = spec.group;
    return (s) => {
      const jid = from ? s.facts.bareFrom : s.facts.bareTo;
      return jid !== undefined && groups.contains(group, jid);
    };
  },
});

export const CROSSING_GROUPS = defineCondition<CrossingSpec>({
  names: ["CROSSING_GROUPS"],
  param: "required",
  parse(p = "", name) {
    const groups = p.split(",").map((g) => g.trim()).filter((g) => g !== "");
    if (groups.length === 0) return fail("Expected a comma-separated list of groups");
    return { name, groups };
  },
  needs: "groups",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const groups = cx.provider("groups");
    const names = spec.groups;
    return (s) => {
      const { bareTo, bareFrom } = s.facts;
      return !names.some(
        (g) => bareTo !== undefined && bareFrom !== undefined && groups.contains(g, bareTo) && groups.contains(g, bareFrom),
      );
    };
  },
});

export const MAY = defineCondition<MaySpec>({
  names: ["MAY"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, permission: p }),
  needs: "permissions",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const perms = cx.provider("permissions");
    const permission = spec.permission;
    return (s) => perms.may(permission, { jid: s.ctx.origin?.jid, host: s.facts.currentHost });
  },
});

export const ROLE = defineCondition<RoleSpec>({
  names: ["TO_ROLE", "FROM_ROLE"],
  param: "required",
  spaceSensitive: true,
  parse: (p = "", name) => ({ name, role: p }),
  needs: "roles",
  cost: COST_LOOKUP,
  compile(spec, cx) {
    const roles = cx.provider("roles");
    const from = spec.name === "FROM_ROLE";
    const role = spec.role;
    return (s) => {
      const jid = from ? s.facts.bareFrom : s.facts.bareTo;
      const host = s.facts.currentHost;
      return jid !== undefined && host !== undefined && roles.roleOf(jid, host) === role;
    };
  },
});

export const SERVER = [ADMIN, ADMIN_OF, GROUP, CROSSING_GROUPS, MAY, ROLE] as const;
