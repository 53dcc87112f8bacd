// XEP-0198 counts across a proxy that drops and injects stanzas
// (docs/stream-view.md, "Stream management counts").
//
// Each end of a stream-managed stream counts the stanzas it has handled and
// acknowledges that count (`h`). When the proxy drops a stanza, or sends one
// of its own (a bounce, a firewall reply), the two ends no longer count the
// same stanzas, and Prosody ends a stream whose client acknowledges more than
// the server sent. One AckMap per direction records where the two counts part
// and turns the receiver's count into the sender's.

/** Counts are modulo 2^32 on the wire (XEP-0198: `h` wraps). */
const WRAP = 2 ** 32;

/** Most divergence points remembered for one direction before the oldest are merged. */
const MAX_POINTS = 4096;

/**
 * One direction: stanzas the sender sent (and the proxy saw) against
 * stanzas the receiver got. A point is recorded after every drop (sender
 * count moves alone) or injection (receiver count moves alone); between
 * points the two move together.
 */
export class AckMap {
  /** Stanzas delivered to the receiver since counting began (unwrapped). */
  #received = 0;
  /** Stanzas the sender sent since counting began, as the proxy saw them (unwrapped). */
  #sent = 0;
  /** The last point at or before the last acknowledgement (counts before it agree by this offset). */
  #baseR = 0;
  #baseS = 0;
  /** Later points, oldest first: receiver count and sender count after each divergence. */
  #pointR: number[] = [];
  #pointS: number[] = [];
  /** The first point in use (earlier ones were folded into the base). */
  #first = 0;

  /** True while the two counts agree: nothing needs rewriting. */
  get aligned(): boolean {
    return this.#received === this.#sent && this.#baseR === this.#baseS && this.#pointR.length === this.#first;
  }

  /** A stanza went through unchanged. */
  passed(): void {
    this.#received += 1;
    this.#sent += 1;
  }

  /** The sender's stanza was not delivered. */
  dropped(): void {
    this.#sent += 1;
    this.#point();
  }

  /** The proxy delivered a stanza of its own. */
  injected(): void {
    this.#received += 1;
    this.#point();
  }

  /**
   * The receiver's acknowledgement `h` (modulo 2^32) as the sender counts:
   * stanzas dropped before or at that point count as handled, the proxy's own
   * do not. An `h` beyond what was delivered keeps its distance (the sender's
   * end judges it as it would without the proxy).
   */
  toSender(h: number): number {
    const unwrapped = unwrap(h, this.#received);
    let r = this.#baseR;
    let s = this.#baseS;
    for (let i = this.#pointR.length - 1; i >= this.#first; i--) {
      if (this.#pointR[i]! <= unwrapped) {
        r = this.#pointR[i]!;
        s = this.#pointS[i]!;
        break;
      }
    }
    return (((s + (unwrapped - r)) % WRAP) + WRAP) % WRAP;
  }

  /** The receiver acknowledged `h`: points at or before it fold into the base. */
  acknowledged(h: number): void {
    const unwrapped = unwrap(h, this.#received);
    while (this.#first < this.#pointR.length && this.#pointR[this.#first]! <= unwrapped) {
      this.#baseR = this.#pointR[this.#first]!;
      this.#baseS = this.#pointS[this.#first]!;
      this.#first += 1;
    }
    this.#compact();
  }

  /**
   * A resumed stream: the receiver had `h` when the old connection went.
   * Counting goes on from there. What the proxy injected after it went with
   * the old connection; what it dropped after it, the sender sends again (and
   * the proxy judges again).
   */
  resumeAt(h: number): void {
    const received = unwrap(h, this.#received);
    const sent = unwrap(this.toSender(h), this.#sent);
    this.acknowledged(h);
    this.#pointR.length = this.#first;
    this.#pointS.length = this.#first;
    this.#received = received;
    this.#sent = sent;
    if (received - sent !== this.#baseR - this.#baseS) this.#point();
  }

  #point(): void {
    if (this.#pointR.length - this.#first >= MAX_POINTS) {
      // A receiver that never acknowledges: the oldest divergence folds into
      // the base (acknowledgements older than it are then mapped with it).
      this.#baseR = this.#pointR[this.#first]!;
      this.#baseS = this.#pointS[this.#first]!;
      this.#first += 1;
    }
    this.#pointR.push(this.#received);
    this.#pointS.push(this.#sent);
    this.#compact();
  }

  #compact(): void {
    if (this.#first > 64 && this.#first * 2 > this.#pointR.length) {
      this.#pointR = this.#pointR.slice(this.#first);
      this.#pointS = this.#pointS.slice(this.#first);
      this.#first = 0;
    }
  }
}

/** The unwrapped count nearest to `near` that is `h` modulo 2^32. */
function unwrap(h: number, near: number): number {
  const candidate = near - (near % WRAP) + h;
  if (candidate - near > WRAP / 2 && candidate >= WRAP) return candidate - WRAP;
  if (near - candidate > WRAP / 2) return candidate + WRAP;
  return candidate;
}

/**
 * Both directions of one c2s stream. `toServer` maps what the client sent
 * against what the server received; `toClient` the other way.
 */
export class SmLedger {
  /** Client → server: the server's `<a h>`, `<resumed h>`, `<failed h>` are in its units. */
  readonly toServer = new AckMap();
  /** Server → client: the client's `<a h>` and `<resume h>` are in its units. */
  readonly toClient = new AckMap();

  /** The client's `h` (stanzas it received) as the server counts them. */
  clientAck(h: number): number {
    const mapped = this.toClient.toSender(h);
    this.toClient.acknowledged(h);
    return mapped;
  }

  /** The server's `h` (stanzas it received) as the client counts them. */
  serverAck(h: number): number {
    const mapped = this.toServer.toSender(h);
    this.toServer.acknowledged(h);
    return mapped;
  }
}
