// Reads a XEP-0077 `jabber:iq:register` iq the way mod_register_ibr and
// mod_user_account_management do (docs/registration.md, "How Prosody handles a registration"): a data form when present,
// otherwise the legacy <username/>/<password/> children, or <remove/>. A
// client may send a field more than once (or both a form and legacy fields);
// every distinct username it mentions is returned, so the policy can refuse
// when any of them is refused and no duplicate smuggles a name past it.
import type { Element } from "ltx";
import type { StanzaView } from "../xml/stanza-view.js";

export const NS_REGISTER = "jabber:iq:register";
export const NS_DATA_FORMS = "jabber:x:data";

export type RegisterQuery =
  /** `<remove/>`: account deletion (after authentication). */
  | { readonly kind: "remove" }
  /**
   * Fields set. `username` is what the server will use (the form's first
   * username field, else the first legacy <username/>), `usernames` every
   * distinct value given anywhere. Null/false when absent.
   */
  | {
      readonly kind: "fields";
      readonly username: string | null;
      readonly usernames: readonly string[];
      readonly hasPassword: boolean;
    };

/** Cheap test on the head: an iq set whose first child is a jabber:iq:register query. */
export function isRegisterSet(stanza: StanzaView): boolean {
  return (
    stanza.kind === "iq" &&
    stanza.type === "set" &&
    stanza.firstChildName === "query" &&
    stanza.firstChildXmlns === NS_REGISTER
  );
}

function formValues(form: Element, name: string): string[] {
  const out: string[] = [];
  for (const field of form.getChildren("field", NS_DATA_FORMS)) {
    if (field.attrs.var !== name) continue;
    for (const value of field.getChildren("value", NS_DATA_FORMS)) out.push(value.getText());
  }
  return out;
}

/** Parse the register payload of an iq set; null when it has none. */
export function readRegisterQuery(stanza: StanzaView): RegisterQuery | null {
  const iq = stanza.tree();
  if (iq === null) return null;
  const query = iq.getChild("query", NS_REGISTER);
  if (query === undefined) return null;
  if (query.getChild("remove", NS_REGISTER) !== undefined) return { kind: "remove" };
  const legacy = query.getChildren("username", NS_REGISTER).map((el) => el.getText());
  const legacyPassword = query.getChildren("password", NS_REGISTER).some((el) => el.getText() !== "");
  const form = query.getChild("x", NS_DATA_FORMS);
  const formNames = form === undefined ? [] : formValues(form, "username");
  const formPassword = form !== undefined && formValues(form, "password").some((v) => v !== "");
  // Prosody reads the form when there is one and ignores the legacy fields.
  const username = form !== undefined ? (formNames[0] ?? null) : (legacy[0] ?? null);
  return {
    kind: "fields",
    username,
    usernames: [...new Set([...formNames, ...legacy])],
    hasPassword: form !== undefined ? formPassword : legacyPassword,
  };
}
