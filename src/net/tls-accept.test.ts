import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, type TlsConfig } from "../config/schema.js";
import { failureReason, tlsModeFor } from "./tls-accept.js";
import type { CertificateStore } from "./certificates.js";

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
