// Lines Prosody's mod_firewall loads although they are not what they look
// like: xmpp-guard loads them too, warns at their position, and does at run
// time what Prosody does (test/integration/firewall-differential.test.ts holds
// the same files against the real module: tolerated.pfw, quirk-*.pfw).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { checkRules } from "./check.js";
import { compileRuleSources, type CompileOptions } from "./compile.js";
import type { FirewallResult } from "./context.js";
import { fileListItems } from "./lists.js";
import { testStanza } from "../../test/helpers/test-stanza.js";

function load(text: string, options: CompileOptions = {}) {
  const r = compileRuleSources([{ file: "t.pfw", text }], options);
  assert.deepEqual(r.errors.map((e) => e.format()), [], "loads");
  return { ruleset: r.ruleset!, warnings: r.warnings.map((w) => w.format()) };
}

const MSG = "<message id='m1' to='a@localhost' from='b@example.com/r' type='chat'><body>hi</body></message>";

function run(text: string, xml = MSG, options: CompileOptions = {}): FirewallResult {
  return load(text, options).ruleset.run("deliver", { stanza: testStanza(xml) });
}

describe("BOUNCE is read as Prosody reads it", () => {
  it("a comment after the condition is ignored: exactly the error Prosody sends", () => {
    const { ruleset, warnings } = load("BOUNCE=policy-violation # a comment");
    assert.deepEqual(warnings, ["t.pfw:1:24: '# a comment' after the error condition is ignored, as in Prosody (a text goes last, in parentheses: BOUNCE=condition (text))"]);
    const r = ruleset.run("deliver", { stanza: testStanza(MSG) });
    assert.equal(
      r.bounce?.stanza,
      "<message to='b@example.com/r' from='a@localhost' id='m1' type='error'><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
  });

  it("the text is a final (…) after a space, wherever the rest is", () => {
    assert.equal(run("BOUNCE=policy-violation # note (the text)").bounce?.text, "the text");
    assert.equal(run("BOUNCE=not-acceptable (not this) since more follows").bounce?.text, undefined);
  });

  it("unknown conditions and types are sent as written, with a warning", () => {
    const a = load("BOUNCE=spam-detected");
    assert.match(a.warnings[0]!, /'spam-detected' is not an RFC 6120 stanza error condition/);
    const r = a.ruleset.run("deliver", { stanza: testStanza(MSG) });
    assert.match(r.bounce!.stanza, /<error type='cancel'><spam-detected xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/><\/error>/);
    const b = load("BOUNCE=policy-violation:fatal (x)");
    assert.match(b.warnings[0]!, /^t\.pfw:1:25: 'fatal' is not an error type/);
    assert.match(b.ruleset.run("deliver", { stanza: testStanza(MSG) }).bounce!.stanza, /<error type='fatal'>/);
  });

  it("a space after '=' leaves no condition: service-unavailable", () => {
    const r = run("BOUNCE= policy-violation (why)");
    assert.deepEqual([r.bounce?.condition, r.bounce?.type, r.bounce?.text], ["service-unavailable", "cancel", "why"]);
  });
});

describe("definitions and references Prosody does not check", () => {
  it("a zone nobody defined, or one without members, is empty", () => {
    const { ruleset, warnings } = load("%ZONE empty:\n\nENTERING: nowhere\nLOG=a\n\nNOT LEAVING: nowhere\nLOG=b\n\nENTERING: empty\nLOG=c");
    assert.deepEqual(warnings, [
      "t.pfw:1:13: zone 'empty' has no members: ENTERING/LEAVING it never holds (as in Prosody)",
      "t.pfw:3:1: zone 'nowhere' is not defined (above, or in an earlier file): it is empty, so ENTERING never holds, as in Prosody",
      "t.pfw:6:1: zone 'nowhere' is not defined (above, or in an earlier file): it is empty, so LEAVING never holds, as in Prosody",
    ]);
    assert.deepEqual(ruleset.run("deliver", { stanza: testStanza(MSG) }).logs.map((l) => l.message), ["b"]);
  });

  it("text after a list's type or options is ignored", () => {
    const { warnings } = load("%LIST seen: memory and a remark\n%LIST l2: memory (limit: 5) remark\n\nCHECK LIST: seen contains x\nCHECK LIST: l2 contains x\nDROP.");
    assert.deepEqual(warnings, [
      "t.pfw:1:20: 'and a remark' after the list type is ignored, as in Prosody (options go in parentheses: (name: value, …))",
      "t.pfw:2:29: 'remark' after the list options is ignored, as in Prosody (options go in parentheses: (name: value, …))",
    ]);
  });
});

describe("actions Prosody runs without effect", () => {
  it("LOG at a level the logger does not have logs nothing (levels are lower case)", () => {
    const { ruleset, warnings } = load("LOG=[trace] a\nLOG=[INFO] b\nLOG=[warn] c");
    assert.equal(warnings.length, 2);
    assert.match(warnings[1]!, /^t\.pfw:2:6: 'INFO' is not a log level/);
    assert.deepEqual(ruleset.run("deliver", { stanza: testStanza(MSG) }).logs.map((l) => `${l.level} ${l.message}`), ["warn c"]);
  });

  it("JUMP CHAIN to a name no chain can have does nothing, and says so once", () => {
    const { ruleset, warnings } = load("JUMP CHAIN=nowhere\nJUMP CHAIN= user/x\nLOG=after\n\n::user/x\nDROP.");
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /JUMP CHAIN='nowhere': no chain has this name/);
    assert.match(warnings[1]!, /JUMP CHAIN=' user\/x': no chain has this name/);
    const r = ruleset.run("deliver", { stanza: testStanza(MSG) });
    assert.deepEqual([r.verdict, r.logs.map((l) => l.message)], ["pass", ["after"]]);
  });
});

describe("two spaces after ':' keep a space in the parameter (quirk)", () => {
  it("conditions that compare it as written never hold, with a warning; NOT makes them always hold", () => {
    for (const c of ["TO:  a@localhost", "FROM:  b@example.com/r", "FROM_EXACTLY:  b@example.com/r", "PAYLOAD:  urn:x"]) {
      const { ruleset, warnings } = load(`${c}\nDROP.\n\nNOT ${c}\nLOG=negated`);
      assert.match(warnings[0]!, /more than one space after '.*:': Prosody keeps the second as part of the parameter/, c);
      const r = ruleset.run("deliver", { stanza: testStanza("<message to='a@localhost' from='b@example.com/r'><x xmlns='urn:x'/></message>") });
      assert.deepEqual([r.verdict, r.logs.length], ["pass", 1], c);
    }
  });

  it("TO and FROM with two spaces never hold, whatever the JIDs (property)", () => {
    const part = fc.stringMatching(/^[a-z]{1,5}$/);
    fc.assert(
      fc.property(part, part, part, fc.constantFrom("TO", "FROM"), (node, host, res, cond) => {
        const jid = `${node}@${host}.example/${res}`;
        const r = run(`${cond}:  ${node}@${host}.example\nDROP.\n\n${cond}: ${node}@${host}.example\nLOG=one space`, `<message to='${jid}' from='${jid}'/>`);
        assert.deepEqual([r.verdict, r.logs.length], ["pass", 1]);
      }),
      { numRuns: 50 },
    );
  });

  it("INSPECT with a space first reads nothing (which ~=^$ matches)", () => {
    const { ruleset, warnings } = load("INSPECT:  body#=hi\nDROP.\n\nINSPECT:  body#~=^$\nLOG=empty");
    assert.equal(warnings.length, 2);
    const r = ruleset.run("deliver", { stanza: testStanza(MSG) });
    assert.deepEqual([r.verdict, r.logs.map((l) => l.message)], ["pass", ["empty"]]);
  });

  it("conditions that split their list do not mind; CHECK LIST keeps the space in its expression", () => {
    assert.equal(run("KIND:  message\nDROP.").verdict, "drop");
    assert.deepEqual(load("KIND:  message\nDROP.").warnings, []);
    const r = run("%LIST l: memory\n\nADD TO=l  $<body#>\n\nCHECK LIST: l contains  $<body#>\nLOG=spaced\n\nCHECK LIST: l contains $<body#>\nLOG=plain");
    assert.deepEqual(r.logs.map((l) => l.message), ["spaced"]);
  });

  it("STRIP with a space keeps everything", () => {
    const { ruleset, warnings } = load("STRIP= body\nSTRIP=x  urn:x");
    assert.equal(warnings.length, 2);
    assert.equal(ruleset.run("deliver", { stanza: testStanza("<message><body/><x xmlns='urn:x'/></message>") }).rewrite, undefined);
  });
});

describe("list files are read line by line as Prosody reads them (quirk)", () => {
  it("a CR stays in each entry; a blank line is the empty entry", () => {
    assert.deepEqual(fileListItems("a@b\r\nspam\r\n"), ["a@b\r", "spam\r"]);
    assert.deepEqual(fileListItems("alpha\n\nomega\n"), ["alpha", "", "omega"]);
    assert.deepEqual(fileListItems("last"), ["last"]);
    assert.deepEqual(fileListItems(""), []);
  });

  it("every line written to a file is one entry, as written (property)", () => {
    const line = fc.string({ unit: fc.constantFrom("a", "b", " ", "\r", "@", ".", "é"), maxLength: 6 });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), fc.boolean(), (lines, finalNewline) => {
        const text = lines.join("\n") + (finalNewline && lines.length > 0 ? "\n" : "");
        // Without a final LF an empty last line is not a line (Lua's iterator stops there too).
        const expected = !finalNewline && lines.at(-1) === "" ? lines.slice(0, -1) : lines;
        assert.deepEqual(fileListItems(text), expected);
      }),
    );
  });

  it("a CR LF file loads with a warning and matches only entries with their CR", () => {
    const text = "%LIST l: file:l.txt\n\nCHECK LIST: l contains $<@from|bare>\nLOG=from\n\nCHECK LIST: l contains $<body#>\nLOG=body";
    const { ruleset, warnings } = load(text, { readListFile: () => "b@example.com\r\nspam\r\n" });
    assert.match(warnings[0]!, /^t\.pfw:1:1: list file 'l\.txt' has CR LF line ends/);
    assert.deepEqual(ruleset.run("deliver", { stanza: testStanza("<message from='b@example.com/r'><body>spam&#13;</body></message>") }).logs.map((l) => l.message), ["body"]);
  });
});

describe("paths Prosody's find() reads in its own way", () => {
  it("'#' inside a path is a step separator; an impossible name finds nothing", () => {
    const { ruleset, warnings } = load("INSPECT: a#b#=t\nLOG=hash\n\nINSPECT: {urn:a\nLOG=never\n\nINSPECT: {urn:a}x y#~=^$\nLOG=nothing");
    assert.equal(warnings.length, 3);
    assert.deepEqual(ruleset.run("deliver", { stanza: testStanza("<message><a><b>t</b></a></message>") }).logs.map((l) => l.message), ["hash", "nothing"]);
  });
});

describe("forms Prosody cannot load are flagged (they load here)", () => {
  it("names with extra spaces, a byte order mark, hours without minutes", () => {
    assert.match(load("KIND : message\nDROP.").warnings[0]!, /reads this condition's name as 'KIND_'/);
    assert.match(load("TO  SELF?\nDROP.").warnings[0]!, /reads this condition's name as 'TO__SELF'/);
    assert.match(load("BOUNCE =policy-violation").warnings[0]!, /reads this action's name as 'BOUNCE_'/);
    assert.deepEqual(load("NOT  KIND: iq\nDROP.").warnings, [], "Prosody trims around a removed NOT");
    assert.match(load("\uFEFFDROP.").warnings[0]!, /^t\.pfw:1:1: the file starts with a byte order mark/);
    assert.match(load("TIME: 9-17\nDROP.").warnings[0]!, /Prosody fails to load a time with neither minutes nor am\/pm/);
  });

  it("COUNT takes the last number and the rest as the comparison, as Prosody does", () => {
    const { ruleset, warnings } = load("%SEARCH body: body#\n%PATTERN w: %a+\n\nCOUNT: w in body 2 >\nDROP.");
    assert.match(warnings[0]!, /read as '> 2'/);
    assert.equal(ruleset.run("deliver", { stanza: testStanza("<message><body>a b c</body></message>") }).verdict, "drop");
  });
});

describe("check-rules", () => {
  it("prints a tolerated line as file:line:col: warning: … and exits 0", async () => {
    const files: Record<string, string> = { "a.pfw": "BOUNCE=policy-violation # comment\n\nENTERING: undefinedzone\nDROP." };
    const r = await checkRules(["a.pfw"], { readFile: async (p) => files[p]! });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.lines, [
      "a.pfw:1:24: warning: '# comment' after the error condition is ignored, as in Prosody (a text goes last, in parentheses: BOUNCE=condition (text))",
      "a.pfw:3:1: warning: zone 'undefinedzone' is not defined (above, or in an earlier file): it is empty, so ENTERING never holds, as in Prosody",
      "a.pfw: 2 rules (deliver 2)",
      "OK: 1 file, 2 rules, 2 warnings",
    ]);
  });
});
