// Prosody stanza paths (util.stanza `find`; docs/firewall.md, "Reading the stanza as the server holds it"): segments
// `{ns}name` separated by `/`, ending in `#` (text of the last child) or
// `@attr` (attribute of the element reached). Each step takes the FIRST
// matching child, compared by the namespace the server records on elements
// (below): a step without `{ns}` must share its parent's.
import type { PathStep, StanzaPath } from "./ast.js";
import { textOf, type MutableXmlNode, type XmlNode } from "./xml.js";

/** Characters no element or attribute name can hold: a step named with one finds nothing. */
const NOT_IN_NAMES = /[\s{}<>&'"=/#@]/;

/**
 * Read a path the way util.stanza's find() reads it, so that every path the
 * server accepts means the same here. Nothing is refused: a path find()
 * cannot make sense of finds nothing there (an unclosed or empty `{}`, a name
 * no element can have, such as one with a space after a doubled space), and
 * is marked `never`; a `#` that does not end the path separates steps like
 * `/`. Both come with a `warning` for the loader to pass on.
 */
export function parseStanzaPath(source: string): StanzaPath {
  const steps: PathStep[] = [];
  let pos = 0;
  const n = source.length;
  let note: string | undefined;
  const never = (why: string, end: StanzaPath["end"] = { kind: "element" }): StanzaPath => ({
    source,
    steps,
    end,
    never: true,
    warning: `stanza path '${source}' ${why}, so it finds nothing (in Prosody too)`,
  });
  for (;;) {
    if (source[pos] === "@") {
      const name = source.slice(pos + 1);
      const end = { kind: "attr" as const, name };
      if (name === "") return never("ends in '@' with no attribute name", end);
      if (NOT_IN_NAMES.test(name)) return never(`asks for an attribute named '${name}', which no element can have`, end);
      return note === undefined ? { source, steps, end } : { source, steps, end, warning: note };
    }
    let ns: string | undefined;
    if (source[pos] === "{") {
      const close = source.indexOf("}", pos + 1);
      if (close < 0) return never("has a '{' without '}'");
      if (close === pos + 1) return never("has an empty namespace '{}'");
      ns = source.slice(pos + 1, close);
      pos = close + 1;
    }
    let end = pos;
    while (end < n && !"@/#".includes(source[end]!)) end++;
    const raw = source.slice(pos, end);
    if (NOT_IN_NAMES.test(raw)) return never(`has a step named '${raw}', which no element can have`);
    steps.push({ ns, name: raw === "" ? undefined : raw });
    const sep = source[end];
    const next = sep === "/" || sep === "#" ? end + 1 : end;
    if (next === n) {
      const last = { kind: sep === "#" ? ("text" as const) : ("element" as const) };
      return note === undefined ? { source, steps, end: last } : { source, steps, end: last, warning: note };
    }
    if (sep === "#") note ??= `'#' inside stanza path '${source}' does not end it: it separates steps like '/' (as in Prosody)`;
    pos = next;
  }
}

// ---------------------------------------------------------------------------
// Namespaces as the server's stanza object holds them.
//
// The server's stream parser records a namespace on an element (`attr.xmlns`)
// only when the element is not in the stream's content namespace
// (jabber:client on c2s, jabber:server on s2s), or when an ancestor inside
// the stanza already had one recorded; from there down every element carries
// its namespace. A stanza's own children in the content namespace therefore
// have none: to the server they are "in the stanza's namespace", never "in
// jabber:client", whether the client wrote xmlns='jabber:client', a prefix
// bound to it, or nothing. get_child(name, ns) compares those recorded values:
// with an ns, the child's recorded namespace must equal it; without one, it
// must equal the parent's, or be unset.
//
// Two tree forms reach the walk below. StanzaView.tree() is normalised (names
// local, `xmlns` on the root and wherever the namespace changes), so the
// recorded namespace is computed while walking. The private copy that STRIP
// and INJECT edit is kept in the server's form instead (see prosodyForm): each
// element's `xmlns` attribute is exactly what the server records, and an
// INJECTed element keeps the attributes and name it was written with.

/** How a tree records namespaces (see above). */
export type TreeForm = "normalised" | "prosody";

/** An element reached by a walk: its namespace and the namespace the server records on it. */
export interface Located {
  readonly el: XmlNode;
  readonly ns: string;
  /** undefined: nothing recorded (the element and its ancestors are in the content namespace). */
  readonly recorded: string | undefined;
}

/** The stanza element itself: the server records nothing on it. */
export function rootOf(root: XmlNode, contentNs: string): Located {
  return { el: root, ns: contentNs, recorded: undefined };
}

/** A child's namespace and recorded namespace, given its parent's. */
export function locate(parent: Located, child: XmlNode, contentNs: string, form: TreeForm): Located {
  const own = child.attrs.xmlns;
  if (form === "prosody") return { el: child, ns: own ?? parent.ns, recorded: own };
  const ns = own ?? parent.ns;
  return { el: child, ns, recorded: parent.recorded === undefined && ns === contentNs ? undefined : ns };
}

/** util.stanza get_child(name, ns): the first direct child that matches. */
export function getChild(parent: Located, step: PathStep, contentNs: string, form: TreeForm): Located | undefined {
  for (const c of parent.el.children) {
    if (typeof c === "string") continue;
    if (step.name !== undefined && c.name !== step.name) continue;
    const child = locate(parent, c, contentNs, form);
    const rec = child.recorded;
    if (step.ns !== undefined ? rec === step.ns : rec === parent.recorded || rec === undefined) return child;
  }
  return undefined;
}

/**
 * A copy of `at` (and its subtree) in the server's form: `xmlns` set to the
 * recorded namespace on every element, removed where nothing is recorded.
 */
export function prosodyForm(at: Located, contentNs: string): MutableXmlNode {
  const attrs: Record<string, string | undefined> = {};
  if (at.recorded !== undefined) attrs.xmlns = at.recorded;
  for (const [k, v] of Object.entries(at.el.attrs)) if (k !== "xmlns") attrs[k] = v;
  const children: (MutableXmlNode | string)[] = [];
  for (const c of at.el.children) children.push(typeof c === "string" ? c : prosodyForm(locate(at, c, contentNs, "normalised"), contentNs));
  return { name: at.el.name, attrs, children };
}

/**
 * Evaluate a path from the stanza `root`: an element (with where it is), a
 * string (text or attribute), or undefined. `rootAttr` reads the stanza's own
 * attributes, which the tree does not hold as the server does (the defaulted
 * xml:lang, the stamped from).
 */
export function findPath(
  root: XmlNode | null,
  contentNs: string,
  path: StanzaPath,
  form: TreeForm = "normalised",
  rootAttr?: (name: string) => string | undefined,
): Located | string | undefined {
  if (path.never === true) return undefined;
  if (path.steps.length === 0 && path.end.kind === "attr" && rootAttr !== undefined) return rootAttr(path.end.name);
  if (root === null) return undefined;
  let at = rootOf(root, contentNs);
  for (const step of path.steps) {
    const child = getChild(at, step, contentNs, form);
    if (!child) return undefined;
    at = child;
  }
  switch (path.end.kind) {
    case "element":
      return at;
    case "text":
      return textOf(at.el);
    case "attr":
      return at.el.attrs[path.end.name];
  }
}
