// %ZONE, %RATE, %LIST, %SEARCH and %PATTERN values → their parsed form
// (docs/firewall.md, "Definitions"). The parser finds the type, name and
// value; this reads the value. Offsets are relative to the value text.
import type { DefinitionSpec, ListFilter, ListSpec } from "./ast.js";
import { LIST_FILTERS } from "./ast.js";
import { compileLuaPattern } from "./lua-pattern.js";
import { fail, isFail, type ParamContext, type ParamFail } from "./param.js";
import { parseStanzaPath } from "./stanza-path.js";

export const DEFINITION_TYPES = ["ZONE", "RATE", "LIST", "SEARCH", "PATTERN"] as const;

/** Prosody ignores options a list type does not read; say so (remote lists: docs/knowledge.md). */
function warnUnknownListOptions(options: Record<string, string>, known: readonly string[], ctx: ParamContext): void {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) ctx.warn(`unknown list option '${k}' is ignored, as in Prosody (this list type reads: ${known.join(", ")})`);
  }
}

function parseListSpec(value: string, ctx: ParamContext): { list: ListSpec; filters: ListFilter[] } | ParamFail {
  const backend = /^\w+/.exec(value)?.[0];
  const spec = /^\S+/.exec(value)?.[0] ?? "";
  const options: Record<string, string> = {};
  // Options are what Prosody takes: a "(…)" right after the list type, up to
  // the last ')'; anything else after the type is ignored there, and here.
  const optMatch = /^\S+\s+\((.+)\)/s.exec(value);
  if (optMatch) {
    // A comma only separates options when another `name:` follows, so `filter: lower,bare` keeps
    // both filters (Prosody splits at every comma and silently loses all but the first).
    for (const m of optMatch[1]!.matchAll(/(\w+): ?(.*?)(?=,\s*\w+:|$)/gs)) options[m[1]!] = m[2]!.trim();
  }
  const rest = value.slice(optMatch ? optMatch[0].length : spec.length).trim();
  if (rest !== "") ctx.warn(`'${rest}' after the list ${optMatch ? "options" : "type"} is ignored, as in Prosody (options go in parentheses: (name: value, …))`, value.length - rest.length);
  const filters: ListFilter[] = [];
  if (options.filter !== undefined) {
    for (const f of options.filter.match(/[\w_]+/g) ?? []) {
      if (!(LIST_FILTERS as readonly string[]).includes(f)) return fail(`Unknown list filter: ${f} (known: ${LIST_FILTERS.join(", ")})`);
      filters.push(f as ListFilter);
    }
  }
  switch (backend) {
    case "memory": {
      let limit: number | undefined;
      if (options.limit !== undefined) {
        limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1) return fail(`Invalid list limit '${options.limit}'`);
      }
      return { list: { backend, limit }, filters };
    }
    case "file": {
      const path = spec.replace(/^file:/, "");
      if (path === "") return fail("expected file:/path/to/list");
      if (options.missing !== undefined && options.missing !== "ignore") ctx.warn(`unknown value '${options.missing}' for 'missing' (only 'ignore')`);
      return { list: { backend, path, missingOk: options.missing === "ignore" }, filters };
    }
    case "http":
    case "https":
      warnUnknownListOptions(options, ["ttl", "pattern", "hash", "checkcert", "filter"], ctx);
      if (options.hash !== undefined && !/^(md5|sha1|sha256|sha384|sha512)$/.test(options.hash)) return fail(`invalid hash function: ${options.hash}`);
      if (options.ttl !== undefined && !(Number(options.ttl) > 0)) return fail(`invalid ttl for <${spec}> (expected number of seconds)`);
      if (options.pattern !== undefined) {
        try {
          // The list body is split with string.gmatch.
          compileLuaPattern(options.pattern, { mode: "gmatch" });
        } catch (e) {
          return fail(`invalid pattern for <${spec}>: ${(e as Error).message}`);
        }
      }
      return { list: { backend: "http", url: spec, options }, filters };
    case "pubsubitemid":
      warnUnknownListOptions(options, ["hash", "filter"], ctx);
      if (!/^pubsubitemid:[^/]*\/.+$/.test(spec)) return fail("Invalid list specification (expected 'pubsubitemid:<service>/<node>')");
      if (options.hash !== undefined && !/^(md5|sha1|sha256|sha384|sha512)$/.test(options.hash)) return fail(`invalid hash function: ${options.hash}`);
      return { list: { backend, url: spec, options }, filters };
  }
  return fail(`Unknown list type '${backend ?? value}' (memory, file:, http(s)://, pubsubitemid:)`);
}

export function parseDefinition(type: DefinitionSpec["type"], name: string, value: string, ctx: ParamContext): DefinitionSpec | ParamFail {
  switch (type) {
    case "ZONE": {
      const members = value.match(/[^, ]+/g) ?? [];
      if (members.length === 0) ctx.warn(`zone '${name}' has no members: ENTERING/LEAVING it never holds (as in Prosody)`);
      return { type, members };
    }
    case "RATE": {
      const r = /([\d.]+)/.exec(value);
      const rate = r ? Number(r[1]) : NaN;
      if (!Number.isFinite(rate)) return fail("Unable to parse rate");
      const b = /\(\s*burst\s+([\d.]+)\s*\)/.exec(value);
      const burst = b ? Number(b[1]) : 1;
      if (!Number.isFinite(burst)) return fail("Unable to parse burst");
      const e = /\(\s*entries\s+(\d+)\s*\)/.exec(value);
      const entries = e ? Number(e[1]) : undefined;
      if (entries !== undefined && entries < 1) return fail("entries must be at least 1");
      const allowOverflow = /\(allow overflow\)/.test(value);
      for (const m of value.matchAll(/\(([^)]*)\)/g)) {
        if (!/^\s*(burst\s+[\d.]+|entries\s+\d+)\s*$|^allow overflow$/.test(m[1]!)) ctx.warn(`unknown rate option '(${m[1]})' is ignored`, m.index);
      }
      if (rate * burst < 1) ctx.warn(`rate × burst = ${rate * burst} < 1: this limit is always exceeded (give a burst of at least ${Math.ceil(1 / rate)})`);
      return { type, rate, burst, entries, allowOverflow };
    }
    case "LIST": {
      const r = parseListSpec(value, ctx);
      return isFail(r) ? r : { type, list: r.list, filters: r.filters };
    }
    case "PATTERN":
      try {
        // Used by SCAN and COUNT through string.gmatch, which never anchors.
        const t = compileLuaPattern(value, { mode: "gmatch" });
        if (value.startsWith("^")) ctx.warn(`'^' at the start of %PATTERN ${name} is an ordinary character: SCAN and COUNT use string.gmatch, which never anchors`);
        return { type, source: value, captures: t.captures };
      } catch (e) {
        return fail(`Invalid pattern '${name}': ${(e as Error).message}`);
      }
    case "SEARCH": {
      const path = parseStanzaPath(value);
      if (path.warning !== undefined) ctx.warn(path.warning);
      return { type, path };
    }
  }
}
