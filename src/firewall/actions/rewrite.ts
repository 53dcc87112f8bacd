// Actions that change the stanza before it goes on (docs/firewall.md,
// "Actions"): STRIP and INJECT.
import type { XmlNode } from "../xml.js";
import { fail } from "../param.js";
import { A_NEXT } from "../runtime.js";
import { locate, rootOf, type Located } from "../stanza-path.js";
import { cloneNode, parseXmlSnippet } from "../xml.js";
import { defineAction } from "./define.js";

/** element undefined = any name (`*`); ns undefined = the stanza's own namespace. */
export type StripSpec = { readonly name: "STRIP"; readonly element: string | undefined; readonly ns: string | undefined };
export type InjectSpec = { readonly name: "INJECT"; readonly xml: XmlNode };

export const STRIP = defineAction<StripSpec>({
  names: ["STRIP"],
  param: "required",
  parse(p = "", name, ctx) {
    // Split as Prosody does: the first word, then everything after one space.
    const m = /^(\S+) (.+)$/s.exec(p);
    const el = m ? m[1]! : p;
    const ns = m ? m[2]! : undefined;
    if (/\s/.test(el)) ctx.warn(`STRIP of an element named '${el}': no element has a name with a space, so nothing is removed (in Prosody too)`);
    else if (ns !== undefined && /\s/.test(ns)) ctx.warn(`STRIP in namespace '${ns}': a namespace with a space is none a child has, so nothing is removed (in Prosody too)`, el.length + 1);
    return { name, element: el === "*" ? undefined : el, ns };
  },
  compile(spec) {
    const { element, ns } = spec;
    // Prosody's test on each direct child: the name as written, and the
    // child's recorded namespace (none for a child in the stanza's own
    // namespace, see stanza-path.ts) equal to the given one, or, without
    // one, equal to the stanza's (none).
    const matches = (c: Located): boolean => (element === undefined || c.el.name === element) && c.recorded === ns;
    return (s) => {
      const f = s.facts;
      const contentNs = f.stanza.xmlns;
      const current = f.tree();
      if (!current) return A_NEXT;
      const root = rootOf(current, contentNs);
      const form = f.treeForm;
      if (!current.children.some((c) => typeof c !== "string" && matches(locate(root, c, contentNs, form)))) return A_NEXT;
      const tree = f.mutableTree()!;
      const copy = rootOf(tree, contentNs);
      tree.children = tree.children.filter((c) => typeof c === "string" || !matches(locate(copy, c, contentNs, "prosody")));
      return A_NEXT;
    };
  },
});

export const INJECT = defineAction<InjectSpec>({
  names: ["INJECT"],
  param: "required",
  parse(p = "", name) {
    const r = parseXmlSnippet(p);
    if ("error" in r) return fail(`INJECT needs one XML element: ${r.error}`);
    return { name, xml: r.node };
  },
  compile(spec) {
    const xml = spec.xml;
    return (s) => {
      s.facts.mutableTree()?.children.push(cloneNode(xml));
      return A_NEXT;
    };
  },
});

export const REWRITE = [STRIP, INJECT] as const;
