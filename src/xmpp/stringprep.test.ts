// One stringprep for the proxy (src/xmpp/stringprep.ts), checked against
// Prosody 0.12's util.encodings (libidn) and util.jid: the vectors below were
// computed by it (stringprep.nodeprep / nameprep / resourceprep, jid.prep),
// and when lua5.4 and Prosody are installed the same inputs are run through
// it again. The approximation's prohibited sets must stay subsets of the real
// profiles' (never refuse what the server takes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { prepJid } from "./jid.js";
import { MAX_PREP_BYTES, nameprep, nodeprep, resourceprep } from "./stringprep.js";

type Kind = "node" | "name" | "resource" | "jid";

/** [profile, input, Prosody's answer (null: it fails)]. */
const VECTORS: [Kind, string, string | null][] = [
  ["node", "Alice", "alice"],
  ["node", "ALICE", "alice"],
  ["node", "Stra\u00DFe", "strasse"],
  ["node", "\u00DF", "ss"],
  ["node", "MASSE", "masse"],
  ["node", "Ma\u00DFe", "masse"],
  ["node", "\uFF21\uFF4C\uFF49\uFF43\uFF45", "alice"],
  ["node", "\u2168", "ix"],
  ["node", "\u210C", "h"],
  ["node", "\uFB01le", "file"],
  ["node", "\u0130", "i\u0307"],
  ["node", "\u03A3\u03B1\u03C2", "\u03C3\u03B1\u03C3"],
  ["node", "e\u0301", "\u00E9"],
  ["node", "a\u00ADb\uFEFFc\u200D", "abc"],
  ["node", "user.name-1_x", "user.name-1_x"],
  ["node", "\u212A", "k"],
  ["node", "\u017F", "s"],
  ["node", "\u01C5", "d\u017E"],
  ["node", "\u0345", "\u03B9"],
  ["node", "\u03D0", "\u03B2"],
  ["node", "\u1FB3", "\u03B1\u03B9"],
  ["node", "\u0149", "\u02BCn"],
  ["node", "\u13A0", "\u13A0"],
  ["node", "\u00C9COLE", "\u00E9cole"],
  ["node", "a b", null],
  ["node", "a@b", null],
  ["node", "a/b", null],
  ["node", "a\u00A0b", null],
  ["node", "\uE000", null],
  ["node", "\u200B", ""],
  ["node", "", ""],
  ["node", "a".repeat(1023), "a".repeat(1023)],
  ["node", "a".repeat(1024), null],
  ["node", "\u00E9".repeat(511), "\u00E9".repeat(511)],
  ["node", "\u00E9".repeat(512), null],
  ["node", "\uFF21".repeat(341), "a".repeat(341)],
  ["node", "\uFF21".repeat(342), null],
  ["name", "Example.ORG", "example.org"],
  ["name", "Exa\u00DF.org", "exass.org"],
  ["name", "\uFF25xample.org", "example.org"],
  ["name", "exa mple.org", "exa mple.org"],
  ["name", "\u2168.example", "ix.example"],
  ["name", "a\u00ADb.example", "ab.example"],
  ["name", "x".repeat(1024), null],
  ["resource", "Phone", "Phone"],
  ["resource", "Res\u00DF", "Res\u00DF"],
  ["resource", "\uFF21\u00DF", "A\u00DF"],
  ["resource", "a b", "a b"],
  ["resource", "\u2168", "IX"],
  ["resource", "a\u00ADb", "ab"],
  ["resource", "\u03A3\u03B1\u03C2", "\u03A3\u03B1\u03C2"],
  ["resource", "\u0130", "\u0130"],
  ["resource", "a\u0000b", null],
  ["resource", "r".repeat(1023), "r".repeat(1023)],
  ["resource", "r".repeat(1024), null],
  ["jid", "Alice@Example.COM./Phone", "alice@example.com/Phone"],
  ["jid", "Stra\u00DFe@STRA\u00DFE.de/\u00DF\uFF21", "strasse@strasse.de/\u00DFA"],
  ["jid", "\uFF21lice@\uFF25xample.org/R", "alice@example.org/R"],
  ["jid", "alice@example.org./x", "alice@example.org/x"],
  ["jid", "a b@example.org", null],
  ["jid", "@example.org", null],
  ["jid", "x@example.org/a b", "x@example.org/a b"],
  ["jid", "\u03A3\u03B1\u03C2@example.org/\u03A3\u03B1\u03C2", "\u03C3\u03B1\u03C3@example.org/\u03A3\u03B1\u03C2"],
];

const PREP = { node: nodeprep, name: nameprep, resource: resourceprep };

test("nodeprep, nameprep, resourceprep and prepJid agree with Prosody on the vectors (ß, case, fullwidth, 1023/1024 bytes)", () => {
  for (const [kind, input, want] of VECTORS) {
    const label = `${kind}(${JSON.stringify(input.length > 40 ? `${input.slice(0, 8)}…×${input.length}` : input)})`;
    if (kind === "jid") {
      // Where jid.prep fails, prepJid hands the input back unchanged.
      assert.equal(prepJid(input), want ?? input, label);
    } else if (kind === "node" && want === "") {
      // The one deliberate difference: an empty localpart is refused (see nodeprep).
      assert.equal(nodeprep(input), null, label);
    } else {
      assert.equal(PREP[kind](input), want, label);
    }
  }
});

test("the 1023-byte limit applies to input and output", () => {
  assert.equal(MAX_PREP_BYTES, 1023);
  assert.equal(nodeprep("\uFDFA".repeat(100)), null, "NFKC expands U+FDFA to 18 characters");
});

test("prohibited characters are refused by nodeprep", () => {
  for (const bad of ["\u200B", "a b", "a\u00A0b", "a\u3000b", 'a"b', "a&b", "a'b", "a/b", "a:b", "a<b", "a>b", "a@b", "a\u0000b", "a\u0085b", "\uE000", "\uFDD0", "\u{10FFFF}", "\uD800", "a\u200Eb", "\u{E0041}", "\u2FF0", "\uFFFD"]) {
    assert.equal(nodeprep(bad), null, JSON.stringify(bad));
  }
});

const PROSODY = "/usr/lib/prosody/util/encodings.so";
const LUA = "/usr/bin/lua5.4";

test("the vectors are what the installed Prosody computes", { skip: !existsSync(PROSODY) || !existsSync(LUA) ? "no Prosody / lua5.4 here" : false }, () => {
  const script = `
package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
local sp = require "util.encodings".stringprep
local jid = require "util.jid"
local f = { node = sp.nodeprep, name = sp.nameprep, resource = sp.resourceprep, jid = jid.prep }
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
local function tohex(s) if s == nil then return "nil" end return "=" .. (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
for line in io.lines() do
  local k, h = line:match("^(%S+) =(%x*)$")
  print(tohex(f[k](unhex(h))))
end`;
  const input = VECTORS.map(([k, s]) => `${k} =${Buffer.from(s, "utf8").toString("hex")}`).join("\n") + "\n";
  const r = spawnSync(LUA, ["-e", script], { input, encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, VECTORS.length);
  VECTORS.forEach(([kind, input, want], i) => {
    const got = lines[i] === "nil" ? null : Buffer.from(lines[i]!.slice(1), "hex").toString("utf8");
    assert.equal(got, want, `${kind}(${JSON.stringify(input.slice(0, 20))})`);
  });
});
