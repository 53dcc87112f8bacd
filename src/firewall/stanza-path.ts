// Prosody stanza paths (util.stanza `find`, research §2.5 INSPECT): segments
// `{ns}name` separated by `/`, ending in `#` (text of the last child) or
// `@attr` (attribute of the element reached). Each step takes the FIRST
// matching child; a step without `{ns}` must share its parent's namespace,
// with jabber:client/jabber:server counting as no namespace.
import type { PathStep, StanzaPath } from "./ast.js";
import { enterScope, localName, normNs, nsOf, textOf, type NsScope, type XmlNode } from "./xml.js";

/** Parse a path; returns an error message when malformed. */
export function parseStanzaPath(source: string): StanzaPath | { error: string } {
  const steps: PathStep[] = [];
  let pos = 0;
  const n = source.length;
  for (;;) {
    if (source[pos] === "@") {
      const name = source.slice(pos + 1);
      if (name === "" || /[/#{}@]/.test(name)) return { error: `invalid attribute name '${name}' in path '${source}'` };
      return { source, steps, end: { kind: "attr", name } };
    }
    let ns: string | undefined;
    if (source[pos] === "{") {
      const close = source.indexOf("}", pos);
      if (close < 0) return { error: `missing '}' in path '${source}'` };
      ns = source.slice(pos + 1, close);
      if (ns === "") return { error: `empty namespace in path '${source}'` };
      pos = close + 1;
    }
    let end = pos;
    while (end < n && !"@/#".includes(source[end]!)) end++;
    const raw = source.slice(pos, end);
    if (raw.includes("{") || raw.includes("}")) return { error: `unexpected brace in path '${source}'` };
    const step: PathStep = { ns, name: raw === "" ? undefined : raw };
    const sep = source[end];
    if (sep === "#") {
      if (end !== n - 1) return { error: `'#' must end the path '${source}'` };
      steps.push(step);
      return { source, steps, end: { kind: "text" } };
    }
    steps.push(step);
    if (sep === undefined || (sep === "/" && end === n - 1)) {
      return { source, steps, end: { kind: "element" } };
    }
    pos = sep === "/" ? end + 1 : end;
  }
}

export interface ResolvedChild {
  readonly el: XmlNode;
  readonly scope: NsScope;
  readonly ns: string;
}

/** util.stanza get_child(name, xmlns): the first direct child that matches. */
export function getChild(parent: XmlNode, parentScope: NsScope, parentNs: string, step: PathStep): ResolvedChild | undefined {
  const want = step.ns !== undefined ? normNs(step.ns) : normNs(parentNs);
  for (const c of parent.children) {
    if (typeof c === "string") continue;
    if (step.name !== undefined && localName(c.name) !== step.name) continue;
    const scope = enterScope(parentScope, c);
    const ns = nsOf(c, scope);
    if (normNs(ns) === want) return { el: c, scope, ns };
  }
  return undefined;
}

/** The scope and namespace of a stanza root, given its namespace (StanzaView.xmlns). */
export function rootScope(root: XmlNode, stanzaNs: string): { scope: NsScope; ns: string } {
  const scope = enterScope({ defaultNs: stanzaNs, prefixes: undefined }, root);
  return { scope, ns: nsOf(root, scope) || stanzaNs };
}

/** Evaluate a path: an element, a string (text or attribute), or undefined. */
export function findPath(root: XmlNode | null, stanzaNs: string, path: StanzaPath): XmlNode | string | undefined {
  if (root === null) return undefined;
  const r = rootScope(root, stanzaNs);
  let el: XmlNode = root;
  let scope = r.scope;
  let ns = r.ns;
  for (const step of path.steps) {
    const child = getChild(el, scope, ns, step);
    if (!child) return undefined;
    el = child.el;
    scope = child.scope;
    ns = child.ns;
  }
  switch (path.end.kind) {
    case "element":
      return el;
    case "text":
      return textOf(el);
    case "attr":
      return el.attrs[path.end.name];
  }
}
