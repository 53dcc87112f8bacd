import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, type TlsConfig } from "../config/schema.js";
import { failureReason, stripSaslExternal, tlsModeFor } from "./tls-accept.js";
import type { CertificateStore } from "./certificates.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

test("stripSaslExternal removes EXTERNAL, and <mechanisms/> when nothing is left", () => {
  assert.equal(
    stripSaslExternal(`<stream:features><mechanisms xmlns='${SASL}'><mechanism>EXTERNAL</mechanism><mechanism>PLAIN</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`),
    `<stream:features><mechanisms xmlns='${SASL}'><mechanism>PLAIN</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`,
  );
  assert.equal(
    stripSaslExternal(`<stream:features><mechanisms xmlns='${SASL}'>\n <mechanism>EXTERNAL</mechanism>\n</mechanisms><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`),
    `<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`,
  );
  assert.equal(stripSaslExternal(`<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`), null);
  // The word elsewhere (say in a text) is not a mechanism.
  assert.equal(stripSaslExternal(`<stream:features><x>EXTERNAL</x></stream:features>`), null);
});

test("tlsModeFor: direct listeners always; STARTTLS only with certificates and starttls not off", () => {
  const tls: TlsConfig = DEFAULTS.tls as unknown as TlsConfig;
  const store = {} as CertificateStore;
  assert.equal(tlsModeFor("c2s-tls", tls, store), "direct");
  assert.equal(tlsModeFor("s2s-tls", tls, store), "direct");
  assert.equal(tlsModeFor("c2s", tls, store), "starttls");
  assert.equal(tlsModeFor("s2s", tls, store), "starttls");
  assert.equal(tlsModeFor("c2s", tls, null), null);
  assert.equal(tlsModeFor("c2s", { ...tls, starttls: "off" }, store), null);
});

test("failureReason maps codes to a bounded label set", () => {
  assert.equal(failureReason("XPX_ERR_TLS_HANDSHAKE"), "handshake");
  assert.equal(failureReason("XPX_ERR_TLS_HANDSHAKE_TIMEOUT"), "timeout");
  assert.equal(failureReason("XPX_ERR_STARTTLS_TIMEOUT"), "starttls_timeout");
  assert.equal(failureReason("XPX_ERR_TLS_REQUIRED"), "tls_required");
  assert.equal(failureReason("XPX_ERR_STARTTLS_TWICE"), "starttls_twice");
  assert.equal(failureReason("XPX_ERR_XML_NOT_WELL_FORMED"), "stream_error");
});
