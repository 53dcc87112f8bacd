// XML namespaces as the server's parser applies them (docs/stream-view.md).
// An element or attribute is known by its expanded name, namespace URI plus
// local name, whatever prefix or default declaration the sender wrote: to
// the server `<c:message xmlns:c='jabber:client'>` is a message, and so is
// `<message xmlns='jabber:client'>`. Declarations made on the stream header
// stay in scope for every stanza of that stream.
//
// A scope is immutable. Entering an element that declares nothing returns
// the parent scope itself, so the common stanza costs no allocation.


export const NS_XML = "http://www.w3.org/XML/1998/namespace";
export const NS_XMLNS = "http://www.w3.org/2000/xmlns/";

/** Why a start tag is not namespace-well-formed (the server's parser stops there). */
export class NamespaceProblem {
  readonly detail: string;
  constructor(detail: string) {
    this.detail = detail;
  }
}

/** The attributes of a start tag as written: qualified names and decoded values. */
export interface AttributeList {
  readonly attrNames: readonly string[];
  attrAt(k: number): string;
}

export class NsScope {
  /** Nothing declared: no default namespace, only the fixed `xml` prefix. */
  static readonly EMPTY = new NsScope(undefined, null);

  /** The default namespace ("" after `xmlns=''`, undefined when never declared). */
  readonly defaultNs: string | undefined;
  readonly #prefixes: ReadonlyMap<string, string> | null;

  private constructor(defaultNs: string | undefined, prefixes: ReadonlyMap<string, string> | null) {
    this.defaultNs = defaultNs;
    this.#prefixes = prefixes;
  }

  /**
   * What this scope binds, as one string: equal for two scopes exactly when
   * they resolve every prefix alike (declaration order aside). NUL cannot
   * occur in a name or a decoded value, so it separates them.
   */
  get key(): string {
    let key = this.defaultNs === undefined ? "\u0000" : this.defaultNs;
    if (this.#prefixes !== null) {
      const entries = [...this.#prefixes].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      for (const [prefix, uri] of entries) key += `\u0000${prefix}\u0000${uri}`;
    }
    return key;
  }

  /** The namespace a prefix ("" for none) stands for here, or undefined when unbound. */
  resolve(prefix: string): string | undefined {
    if (prefix === "") return this.defaultNs;
    if (prefix === "xml") return NS_XML;
    return this.#prefixes?.get(prefix);
  }

  /**
   * The scope inside an element with this start tag. Illegal declarations are
   * refused as the server's parser refuses them: an empty prefixed binding,
   * rebinding `xml` or `xmlns`, or binding their namespaces to other names.
   */
  enter(head: AttributeList): NsScope | NamespaceProblem {
    const names = head.attrNames;
    let defaultNs = this.defaultNs;
    let prefixes: Map<string, string> | null = null;
    let declared = false;
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!;
      if (name.charCodeAt(0) !== 0x78 /* x */ || !name.startsWith("xmlns")) continue;
      if (name.length === 5) {
        const uri = head.attrAt(k);
        if (uri === NS_XML || uri === NS_XMLNS) return new NamespaceProblem(`default namespace bound to reserved ${uri}`);
        defaultNs = uri;
        declared = true;
        continue;
      }
      if (name.charCodeAt(5) !== 0x3a /* : */) continue;
      const prefix = name.slice(6);
      const uri = head.attrAt(k);
      if (prefix === "" || prefix.includes(":")) return new NamespaceProblem(`bad namespace declaration ${name}`);
      if (prefix === "xmlns") return new NamespaceProblem("the xmlns prefix cannot be declared");
      if (prefix === "xml") {
        if (uri !== NS_XML) return new NamespaceProblem(`the xml prefix bound to ${uri}`);
        continue;
      }
      if (uri === "") return new NamespaceProblem(`prefix ${prefix} undeclared (xmlns:${prefix}='')`);
      if (uri === NS_XML || uri === NS_XMLNS) return new NamespaceProblem(`prefix ${prefix} bound to reserved ${uri}`);
      prefixes ??= this.#prefixes === null ? new Map() : new Map(this.#prefixes);
      prefixes.set(prefix, uri);
      declared = true;
    }
    if (!declared) return this;
    return new NsScope(defaultNs, prefixes ?? this.#prefixes);
  }
}

/** An element's expanded name. */
export interface ExpandedName {
  readonly ns: string;
  readonly local: string;
}

/** The expanded name of an element written `qname` inside `scope` (its own declarations applied). */
export function elementName(qname: string, scope: NsScope): ExpandedName | NamespaceProblem {
  const colon = qname.indexOf(":");
  if (colon < 0) return { ns: scope.defaultNs ?? "", local: qname };
  const prefix = qname.slice(0, colon);
  const local = qname.slice(colon + 1);
  if (local === "" || local.includes(":") || (prefix === "" && qname.includes(":"))) return new NamespaceProblem(`bad element name ${qname}`);
  if (prefix === "xmlns") return new NamespaceProblem(`element ${qname} uses the xmlns prefix`);
  const ns = scope.resolve(prefix);
  if (ns === undefined) {
    // No default namespace at all means "no namespace"; an unbound prefix is an error.
    if (prefix === "") return { ns: "", local };
    return new NamespaceProblem(`unbound prefix ${prefix} on element ${qname}`);
  }
  return { ns, local };
}

/**
 * Check the attributes of a start tag inside `scope`: every prefix bound, and
 * no two attributes with the same expanded name. Returns null when fine.
 */
export function checkAttributes(head: AttributeList, scope: NsScope): NamespaceProblem | null {
  const names = head.attrNames;
  let first: string | undefined;
  let seen: Set<string> | null = null;
  for (let k = 0; k < names.length; k++) {
    const name = names[k]!;
    const colon = name.indexOf(":");
    if (colon < 0) continue;
    // xml:* is always bound, and only under that prefix (a repeat is a plain duplicate).
    if (colon === 3 && name.charCodeAt(0) === 0x78 && name.startsWith("xml:")) continue;
    if (colon === 5 && name.startsWith("xmlns:")) continue;
    const prefix = name.slice(0, colon);
    const local = name.slice(colon + 1);
    if (prefix === "" || local === "" || local.includes(":")) return new NamespaceProblem(`bad attribute name ${name}`);
    const ns = scope.resolve(prefix);
    if (ns === undefined) return new NamespaceProblem(`unbound prefix ${prefix} on attribute ${name}`);
    const key = `${ns}\u0001${local}`;
    if (first === undefined) {
      first = key;
      continue;
    }
    seen ??= new Set([first]);
    if (seen.has(key)) return new NamespaceProblem(`attribute {${ns}}${local} given twice`);
    seen.add(key);
  }
  return null;
}

/** A parsed element's attribute object (ltx's `attrs`) as an AttributeList. */
export class RecordAttributes implements AttributeList {
  readonly attrNames: readonly string[];
  readonly #attrs: Record<string, string | undefined>;
  constructor(attrs: Record<string, string | undefined>) {
    this.#attrs = attrs;
    this.attrNames = Object.keys(attrs).filter((k) => attrs[k] !== undefined);
  }
  attrAt(k: number): string {
    return String(this.#attrs[this.attrNames[k]!]);
  }
}

/**
 * The scope inside a parsed element, for walking a tree whose namespaces
 * were already checked (a stanza the framer and the view accepted): a
 * declaration the server would refuse leaves the parent's scope.
 */
export function scopeInside(parent: NsScope, attrs: Record<string, string | undefined>): NsScope {
  const inner = parent.enter(new RecordAttributes(attrs));
  return inner instanceof NamespaceProblem ? parent : inner;
}

/** The namespace of an element written `qname`, given the scope inside it; "" when unbound. */
export function namespaceOf(qname: string, inner: NsScope): string {
  const name = elementName(qname, inner);
  return name instanceof NamespaceProblem ? "" : name.ns;
}
