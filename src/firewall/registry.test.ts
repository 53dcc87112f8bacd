// The condition and action registries (docs/firewall.md, "Adding a
// condition"): one entry per name, the parser finds every name through them,
// an entry's `param` is what the parser asks of the line, and `terminal`
// marks the actions after which others are unreachable.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ACTIONS } from "./actions/index.js";
import { CONDITIONS } from "./conditions/index.js";
import { parseRuleFile } from "./parser.js";

const display = (name: string) => name.replace(/_/g, " ");

function parse(text: string) {
  const r = parseRuleFile("t.pfw", text);
  return { ast: r.ast, errors: r.errors.map((e) => e.format()), warnings: r.warnings.map((e) => e.format()) };
}

describe("condition registry", () => {
  it("each name has one entry, and no condition is also an action", () => {
    const defs = new Set(CONDITIONS.values());
    const names = [...defs].flatMap((d) => d.names);
    assert.equal(new Set(names).size, names.length);
    assert.deepEqual([...CONDITIONS.keys()].sort(), [...names].sort());
    for (const name of names) assert.equal(ACTIONS.has(name), false, name);
  });

  it("the parser knows every name, and asks for a parameter as the entry says", () => {
    for (const [name, def] of CONDITIONS) {
      const bare = parse(`${display(name)}?\nDROP.`);
      if (def.param === "required") {
        assert.deepEqual(bare.errors, [`t.pfw:1:${display(name).length + 2}: ${display(name)} needs a parameter ('${display(name)}: …')`]);
      } else {
        assert.deepEqual(bare.errors, [], name);
        assert.equal(bare.ast.rules[0]!.conditions[0]!.spec.name, name);
      }
      if (def.param === "none") {
        const extra = parse(`${display(name)}: x\nDROP.`);
        assert.equal(extra.errors.length, 0, name);
        assert.match(extra.warnings.join("\n"), new RegExp(`${display(name)} takes no parameter`));
      }
    }
  });

  it("NOT applies to every condition alike", () => {
    const r = parse("NOT TO SELF?\nNOT KIND: iq\nDROP.");
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.ast.rules[0]!.conditions.map((c) => [c.spec.name, c.negated]), [["TO_SELF", true], ["KIND", true]]);
  });
});

describe("action registry", () => {
  it("each name has one entry", () => {
    const names = [...new Set(ACTIONS.values())].flatMap((d) => d.names);
    assert.equal(new Set(names).size, names.length);
    assert.deepEqual([...ACTIONS.keys()].sort(), [...names].sort());
  });

  it("an action after a terminal one is unreachable; after any other it is not", () => {
    for (const [name, def] of ACTIONS) {
      const line = def.param === "required" ? `${display(name)}=x` : `${display(name)}.`;
      const r = parse(`KIND: message\n${line}\nLOG=after`);
      const unreachable = r.warnings.some((w) => w.includes("unreachable"));
      assert.equal(unreachable, def.terminal === true, name);
    }
  });
});
