// Tests for the validator (util/validate.ts): every problem reported in one
// pass with its path, unknown keys with suggestions, renamed keys, custom
// messages, cross-field refinements, defaults and inferred types.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  bool,
  editDistance,
  firstIssue,
  formatPath,
  int,
  list,
  listOptions,
  nullable,
  obj,
  opaque,
  optional,
  refine,
  required,
  section,
  str,
  suggestKey,
  validate,
  type SchemaIssue,
} from "./validate.js";

function show(i: SchemaIssue): string {
  return `${formatPath(i.path)}: ${i.message}${i.target === "value" ? "" : ` [${i.target}]`}`;
}

describe("suggestions", () => {
  it("suggestKey: distance ≤ 2, ≤ 1 for short keys, spelling-insensitive", () => {
    const known = ["listen", "upstream", "log", "type", "name", "max_depth", "max_attributes"];
    assert.equal(suggestKey("lsiten", known), "listen");
    assert.equal(suggestKey("listn", known), "listen");
    assert.equal(suggestKey("upstrem", known), "upstream");
    assert.equal(suggestKey("nmae", known), "name");
    assert.equal(suggestKey("tpye", known), "type");
    assert.equal(suggestKey("lgo", known), "log");
    assert.equal(suggestKey("foo", known), undefined, "2 edits from log, but too short to guess");
    assert.equal(suggestKey("MaxDepth", known), "max_depth");
    assert.equal(suggestKey("max_attrs", known), undefined);
    assert.equal(suggestKey("whatever", known), undefined);
  });

  it("editDistance counts adjacent transpositions as one edit", () => {
    assert.equal(editDistance("", ""), 0);
    assert.equal(editDistance("abc", ""), 3);
    assert.equal(editDistance("kitten", "sitting"), 3);
    assert.equal(editDistance("listen", "lsiten"), 1);
    assert.equal(editDistance("ca", "abc"), 3);
  });
});

describe("DSL", () => {
  const spec = obj(
    {
      port: required(int({ min: 1 })),
      label: optional(str(), "none"),
      inner: section(obj({ depth: optional(int(), 3) }, { renamed: { max_depth: "depth" } })),
    },
    { renamed: { listen_port: "port", old_section: "limits.inner" } },
  );

  it("reports renamed options at the key, without also calling the new key missing", () => {
    const result = validate(spec, { listen_port: 5222, old_section: {}, inner: { max_depth: 2 } });
    assert.equal(result.ok, false);
    assert.deepEqual(result.ok ? [] : result.issues.map(show), [
      "listen_port: `listen_port` was renamed to `port` [key]",
      "old_section: `old_section` was renamed to `limits.inner` [key]",
      "inner.max_depth: `max_depth` was renamed to `depth` [key]",
    ]);
  });

  it("still reports the new key missing when the old one is absent", () => {
    const result = validate(spec, {});
    assert.deepEqual(result.ok ? [] : result.issues.map(show), ["port: required option is missing [parent]"]);
  });

  it("infers output types and fills defaults", () => {
    const result = validate(spec, { port: 1 });
    assert.equal(result.ok, true);
    if (result.ok) {
      const value: { readonly port: number; readonly label: string; readonly inner: { readonly depth: number } } = result.value;
      assert.deepEqual(value, { port: 1, label: "none", inner: { depth: 3 } });
    }
  });

  it("formatPath", () => {
    assert.equal(formatPath([]), "<root>");
    assert.equal(formatPath(["listeners", 0, "accept_proxy_from", 2]), "listeners[0].accept_proxy_from[2]");
    assert.equal(formatPath([3]), "[3]");
  });
});

describe("every problem at once", () => {
  const spec = refine(
    obj({
      min: optional(int({ min: 0 }), 0),
      max: optional(int({ min: 0 }), 10),
      names: optional(list(str()), []),
      on: optional(bool(), true),
      inner: section(obj({ depth: required(int()) })),
    }),
    (v, report) => {
      if (v.min > v.max) report(["min"], "is above max");
    },
  );

  it("collects unknown keys, bad values at every depth and missing keys in one pass", () => {
    const result = validate(spec, { min: -1, max: "x", names: ["a", 2, ""], on: "yes", inner: {}, extra: 1 });
    assert.equal(result.ok, false);
    assert.deepEqual(result.ok ? [] : result.issues.map(show), [
      "extra: unknown option [key]",
      "min: must be an integer >= 0",
      "max: must be an integer >= 0",
      "names[1]: must be a string",
      "names[2]: must not be empty",
      "on: must be true or false",
      "inner.depth: required option is missing [parent]",
    ]);
  });

  it("runs refinements only on a sound value, and reports them at their path", () => {
    const bad = validate(spec, { min: 5, max: 2, inner: { depth: 1 } });
    assert.deepEqual(bad.ok ? [] : bad.issues.map(show), ["min: is above max"]);
    const unsound = validate(spec, { min: 5, max: "2", inner: { depth: 1 } });
    assert.deepEqual(unsound.ok ? [] : unsound.issues.map(show), ["max: must be an integer >= 0"]);
  });

  it("takes a section's own messages for unknown keys and non-mappings", () => {
    const custom = obj({ a: optional(int(), 1) }, { unknown: (k) => (k === "old_a" ? "spelled `a` here" : undefined), notMapping: () => "expected { a: 1 }" });
    const r = validate(custom, { old_a: 1, b: 2 });
    assert.deepEqual(r.ok ? [] : r.issues.map(show), ["old_a: spelled `a` here [key]", "b: unknown option; did you mean `a`? [key]"]);
    const m = validate(custom, [1]);
    assert.deepEqual(m.ok ? [] : m.issues.map(show), ["<root>: expected { a: 1 }"]);
  });

  it("firstIssue: the first problem with a dotted `at`", () => {
    assert.deepEqual(firstIssue(validate(spec, { names: ["a", 1] })), { ok: false, message: "must be a string", at: "names.1" });
    assert.deepEqual(firstIssue(validate(spec, 3)), { ok: false, message: "must be a mapping" });
    const good = firstIssue(validate(spec, { inner: { depth: 2 } }));
    assert.equal(good.ok, true);
  });

  it("opaque: one option for listOptions, the same checks", () => {
    const outer = obj({ sub: optional(nullable(opaque(obj({ x: optional(int(), 1) }), "sub options")), null) });
    assert.deepEqual(listOptions(outer).map((o) => o.path), ["sub"]);
    const r = validate(outer, { sub: { x: "no" } });
    assert.deepEqual(r.ok ? [] : r.issues.map(show), ["sub.x: must be an integer"]);
  });
});
