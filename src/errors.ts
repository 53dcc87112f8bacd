// The error catalogue: every refusal xmpp-guard makes has a stable code here,
// a default message, and (when the peer is told) the RFC 6120 stream-error
// condition it maps to. Throw sites name a code; they never pick conditions.
// docs/errors.md lists the same codes; src/errors.test.ts keeps them in sync.

/**
 * Every RFC 6120 §4.9.3 stream error condition: what DISCONNECT accepts, and
 * the bounded label set of stream errors counted (anything else is "other").
 */
export const STREAM_ERROR_CONDITIONS = [
  "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown",
  "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml",
  "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
  "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
  "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version",
] as const;

/** RFC 6120 §4.9.3 stream error conditions we emit. */
export type StreamErrorCondition =
  | "bad-format"
  | "connection-timeout"
  | "host-unknown"
  | "internal-server-error"
  | "invalid-namespace"
  | "not-authorized"
  | "not-well-formed"
  | "policy-violation"
  | "remote-connection-failed"
  | "reset"
  | "restricted-xml"
  | "system-shutdown"
  | "unsupported-version";

interface CatalogueEntry {
  readonly message: string;
  /** Stream error sent to the peer, or null when the connection is just closed (e.g. not XMPP at all). */
  readonly condition: StreamErrorCondition | null;
}

export const ERRORS = {
  XPX_ERR_XML_NOT_WELL_FORMED: { message: "XML is not well-formed", condition: "not-well-formed" },
  XPX_ERR_XML_INVALID_UTF8: { message: "invalid UTF-8 byte sequence", condition: "not-well-formed" },
  XPX_ERR_XML_TRUNCATED: { message: "stream ended inside an element", condition: "not-well-formed" },
  XPX_ERR_XML_DUPLICATE_ATTRIBUTE: { message: "duplicate attribute", condition: "not-well-formed" },
  XPX_ERR_S2S_UNVERIFIED_FROM: { message: "stanza from a domain this stream has not verified", condition: "not-authorized" },
  XPX_ERR_XML_NAMESPACE: { message: "namespace error: an unbound prefix or an illegal namespace declaration", condition: "not-well-formed" },
  XPX_ERR_XML_RESTRICTED: { message: "XML construct not allowed in XMPP", condition: "restricted-xml" },
  XPX_ERR_XML_TEXT_AT_STREAM_LEVEL: { message: "character data at stream level", condition: "bad-format" },
  XPX_ERR_STANZA_TOO_LARGE: { message: "stanza exceeds max_stanza_size", condition: "policy-violation" },
  XPX_ERR_XML_TOO_DEEP: { message: "element nesting exceeds xml.max_depth", condition: "policy-violation" },
  XPX_ERR_XML_TOO_MANY_ATTRIBUTES: { message: "element has more than xml.max_attributes attributes", condition: "policy-violation" },
  XPX_ERR_XML_NAME_TOO_LONG: { message: "element or attribute name too long", condition: "policy-violation" },
  XPX_ERR_HEADER_TOO_LARGE: { message: "stream header exceeds xml.max_header_size", condition: "policy-violation" },
  XPX_ERR_STREAM_HEADER_INVALID: { message: "first element is not an XMPP stream header", condition: "invalid-namespace" },
  XPX_ERR_STREAM_VERSION: { message: "unsupported stream version", condition: "unsupported-version" },
  XPX_ERR_STREAM_HEADER_TIMEOUT: { message: "no stream header within timeouts.stream_header", condition: "connection-timeout" },
  XPX_ERR_PRE_AUTH_IDLE: { message: "no traffic before authentication within timeouts.pre_auth_idle", condition: "connection-timeout" },
  XPX_ERR_PRE_AUTH_TIMEOUT: { message: "not authenticated within timeouts.pre_auth", condition: "connection-timeout" },
  XPX_ERR_STANZA_TIMEOUT: { message: "stanza not completed within timeouts.stanza", condition: "policy-violation" },
  XPX_ERR_UPSTREAM_UNREACHABLE: { message: "upstream server refused or unreachable", condition: "remote-connection-failed" },
  XPX_ERR_UPSTREAM_TIMEOUT: { message: "upstream did not connect and answer within timeouts.connect", condition: "remote-connection-failed" },
  XPX_ERR_UPSTREAM_CLOSED: { message: "upstream server closed the connection", condition: "remote-connection-failed" },
  XPX_ERR_UPSTREAM_PROTOCOL: { message: "upstream server sent bad XML", condition: "internal-server-error" },
  XPX_ERR_PROXY_HEADER_UNTRUSTED: { message: "PROXY header from a source not in accept_proxy_from", condition: null },
  XPX_ERR_PROXY_HEADER_INVALID: { message: "invalid or missing PROXY protocol header", condition: null },
  XPX_ERR_PROXY_HEADER_TIMEOUT: { message: "PROXY protocol header not received in time", condition: null },
  XPX_ERR_PRE_AUTH_LIMIT: { message: "too much traffic before authentication", condition: "policy-violation" },
  XPX_ERR_TOO_MANY_CONNECTIONS: { message: "too many connections from this address", condition: "policy-violation" },
  XPX_ERR_CONNECTION_RATE: { message: "connecting too often from this address", condition: "policy-violation" },
  XPX_ERR_FIREWALL_DISCONNECT: { message: "closed by a firewall rule", condition: "policy-violation" },
  XPX_ERR_STATE_OPEN: { message: "cannot open the state database", condition: null },
  XPX_ERR_STATE_CORRUPT: { message: "the state database is damaged or not xmpp-guard's", condition: null },
  XPX_ERR_STATE_VERSION: { message: "the state database was written by a newer xmpp-guard", condition: null },
  XPX_ERR_STATE_BACKUP: { message: "state backup or restore failed", condition: null },
  // While running: registrations get a stanza error, no stream is touched.
  XPX_ERR_STATE_FAULT: { message: "the state database failed while running", condition: null },
  XPX_ERR_RULES_INVALID: { message: "firewall rules do not compile", condition: null },
  XPX_ERR_SHUTDOWN: { message: "proxy is shutting down", condition: "system-shutdown" },
  XPX_ERR_CONFIG_INVALID: { message: "invalid configuration", condition: null },
  // TLS termination (docs/tls.md). condition null: after <proceed/> or inside
  // TLS no XML can be sent in the clear (RFC 6120 §5.4.3.2).
  XPX_ERR_TLS_REQUIRED: { message: "TLS is required before anything else", condition: "policy-violation" },
  XPX_ERR_TLS_HANDSHAKE: { message: "TLS handshake failed", condition: null },
  XPX_ERR_TLS_HANDSHAKE_TIMEOUT: { message: "TLS handshake not completed within tls.handshake_timeout", condition: null },
  XPX_ERR_STARTTLS_TIMEOUT: { message: "no <starttls/> within timeouts.stream_header", condition: "connection-timeout" },
  XPX_ERR_STARTTLS_TWICE: { message: "STARTTLS on a stream that is already encrypted", condition: null },
  XPX_ERR_TLS_CERTIFICATES: { message: "TLS certificates cannot be loaded", condition: null },
  XPX_ERR_TLS_RENEGOTIATION: { message: "TLS renegotiation refused", condition: null },
  // Operations (docs/deploy.md).
  XPX_ERR_AUTH_FAILED: { message: "authentication failed", condition: null },
  XPX_ERR_ADMIN_CLOSE: { message: "session closed by the administrator", condition: "policy-violation" },
  XPX_ERR_STATE_BUSY: { message: "the state database is in use by a running proxy", condition: null },
  // XMPP over WebSocket (docs/websocket.md). condition null: the WebSocket is
  // closed with an RFC 6455 code, or the handshake refused with an HTTP status.
  XPX_ERR_WS_FRAMING: { message: "WebSocket message is not exactly one XML element, or a misplaced <open/> or <close/> (RFC 7395)", condition: "not-well-formed" },
  XPX_ERR_WS_BINARY: { message: "binary WebSocket message (RFC 7395 carries XMPP in text messages only)", condition: null },
  XPX_ERR_WS_MESSAGE_TOO_BIG: { message: "WebSocket message larger than max_stanza_size", condition: null },
  XPX_ERR_WS_INVALID_UTF8: { message: "WebSocket text message is not valid UTF-8", condition: null },
  XPX_ERR_WS_PROTOCOL: { message: "WebSocket protocol error", condition: null },
  XPX_ERR_WS_PING_TIMEOUT: { message: "no WebSocket pong within websocket.ping_interval", condition: null },
  XPX_ERR_WS_HANDSHAKE: { message: "not a WebSocket handshake this endpoint accepts", condition: null },
  XPX_ERR_WS_ORIGIN: { message: "WebSocket handshake from an origin not in websocket.allowed_origins", condition: null },
  XPX_ERR_WS_SUBPROTOCOL: { message: "WebSocket handshake without the xmpp subprotocol", condition: null },
  XPX_ERR_WS_FORWARDED_FOR: { message: "X-Forwarded-For from a trusted proxy does not name a client address", condition: null },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERRORS;

/** Base error for everything the proxy refuses. `detail` refines the catalogue message. */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly condition: StreamErrorCondition | null;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const entry: CatalogueEntry = ERRORS[code];
    super(detail ? `${entry.message}: ${detail}` : entry.message, options);
    this.name = "ProxyError";
    this.code = code;
    this.condition = entry.condition;
  }
}
