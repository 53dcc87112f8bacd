// mod_muc_limits at the edge (docs/muc-limits.md): charges
// groupchat messages and joins / presence changes sent to rooms on the listed
// MUC hosts against a bucket per room and, optionally, one per occupant, and
// bounces what is over a limit exactly as mod_muc_limits does. Affiliations are
// learned from the server's presence to users. Pure policy: no sockets, logs
// or metrics; a Clock, hooks and the room buckets' store (src/muc/room-buckets.ts,
// shared by a fleet through Redis) are injected. Must never throw on peer input.
// Deliberate differences from Prosody are listed in docs/muc-limits.md.
import { Buffer } from "node:buffer";
import type { Element } from "ltx";
import type { ReplyAddressing } from "../firewall/error-reply.js";
import type { Flow, PolicyStage, SessionInfo, Verdict } from "../policy/pipeline.js";
import type { Clock } from "../shaping/clock.js";
import type { TokenBucket } from "../shaping/token-bucket.js";
import type { StanzaView } from "../xml/stanza-view.js";
import type { Affiliation, MucLimitsOptions } from "./config.js";
import { IdleTable, type IdleEntry } from "./idle-table.js";
import { MESSAGE_TOO_LONG_TEXT, NICK_TOO_LONG_TEXT, NS_MUC_USER, overactiveReply, tooLongReply } from "./muc-error.js";
import { bareKey, bodyOf, countNewlines, hasMucX, mucXCopy, occupantItem, roomAddress, selfPresenceStatuses, type RoomAddress } from "./muc-stanza.js";
import { covers, debit, LocalRoomBuckets, newBucket, rebucket, type RoomBucketStore, type RoomLimits } from "./room-buckets.js";
import { SessionRooms } from "./session-rooms.js";

/** Why a stanza was limited; a bounded label set for metrics. */
export const LIMIT_REASONS = ["rate", "nick", "chars", "lines"] as const;
export type LimitReason = (typeof LIMIT_REASONS)[number];

/** Which bucket refused a stanza limited for "rate". */
export type RateBucket = "room" | "occupant";

export interface MucLimitsHooks {
  /** Called once per bounced stanza; `bucket` is set for reason "rate" only. */
  readonly onLimited?: (reason: LimitReason, bucket: RateBucket | undefined) => void;
}

export interface MucLimitsStats {
  /** Room buckets held. */
  readonly rooms: number;
  /** Occupant entries held: per-occupant buckets and learned affiliations / nicks. */
  readonly occupants: number;
  /** Entries forgotten early because a table was full (since start). */
  readonly capEvictions: number;
}

interface OccupantEntry extends IdleEntry {
  /** undefined until per_occupant charges it; null while its event_rate is 0. */
  bucket: TokenBucket | null | undefined;
  /** From the server's presence; undefined = none (or not known). */
  affiliation: Affiliation | undefined;
  /** The occupant's current nick in the room, from the server's presence. */
  nick: string | undefined;
}

const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** Most senders counted active in one room; later ones are judged as deep debtors. */
const MAX_ACTIVE_SENDERS = 1000;

/**
 * Step 5's cost of one event: `limit_base_cost + newlines × line_count_multiplier`,
 * in that order of floating-point operations (a bodyless stanza has 0 newlines).
 * A 10-line body (9 newlines) costs 1.9 with the defaults.
 */
export function eventCost(newlines: number, o: Pick<MucLimitsOptions, "limit_base_cost" | "line_count_multiplier">): number {
  return o.limit_base_cost + newlines * o.line_count_multiplier;
}

function roomLimits(o: MucLimitsOptions): RoomLimits {
  return {
    rate: o.event_rate,
    burst: o.burst_factor,
    idleMs: o.idle_seconds * 1000,
    maxRooms: o.max_tracked_rooms,
    baseCost: o.limit_base_cost,
    activeMs: o.active_seconds * 1000,
    maxSenders: MAX_ACTIVE_SENDERS,
  };
}

function isUseless(e: OccupantEntry, maxNick: number): boolean {
  return (
    e.bucket === undefined &&
    e.affiliation === undefined &&
    (e.nick === undefined || Buffer.byteLength(e.nick, "utf8") <= maxNick)
  );
}

/**
 * A fleet-wide home for the per-occupant buckets (state.redis:
 * src/state/fleet-buckets.ts, docs/deploy.md): the same check-then-debit as a
 * local TokenBucket, answered synchronously.
 */
export interface SharedOccupantBuckets {
  covers(name: string, rate: number, capacity: number, cost: number): boolean;
  spend(name: string, cost: number): void;
}

export class MucLimitsStage implements PolicyStage {
  readonly name = "muc_limits";
  /** Room traffic, and the bind result that starts a session's view of its rooms. */
  readonly only = { flow: "both", kinds: ["message", "presence", "iq"] } as const;
  readonly #clock: Clock;
  readonly #hooks: MucLimitsHooks;
  #options: MucLimitsOptions;
  #hosts: ReadonlySet<string>;
  #exempt: ReadonlySet<string>;
  readonly #rooms: RoomBucketStore;
  /** Keyed `room@host/sender@host`: a room key never contains "/". */
  readonly #occupants: IdleTable<OccupantEntry>;
  readonly #limited: Record<LimitReason, number> = { rate: 0, nick: 0, chars: 0, lines: 0 };
  /** Which rooms each c2s session is in. */
  readonly #sessions = new SessionRooms();
  /** What the last #charge took (0 when it took nothing): a join's refundable charge. */
  #lastCharge = 0;

  /**
   * @param rooms where the room buckets live; one process's by default. A
   *   shared store (Redis) needs `clock` to be a wall clock (epoch ms).
   */
  readonly #sharedOccupants: SharedOccupantBuckets | undefined;

  constructor(options: MucLimitsOptions, clock: Clock, hooks: MucLimitsHooks = {}, rooms: RoomBucketStore = new LocalRoomBuckets(), sharedOccupants?: SharedOccupantBuckets) {
    this.#sharedOccupants = sharedOccupants;
    this.#clock = clock;
    this.#hooks = hooks;
    this.#options = options;
    this.#hosts = new Set(options.hosts);
    this.#exempt = new Set(options.exempt_affiliations);
    this.#rooms = rooms;
    rooms.configure(roomLimits(options), clock.now());
    this.#occupants = new IdleTable(options.idle_seconds * 1000, options.max_tracked_occupants);
  }

  get options(): MucLimitsOptions {
    return this.#options;
  }

  /** Stanzas bounced so far, by reason (plain numbers, for a scrape-time copy). */
  get limitedCount(): Readonly<Record<LimitReason, number>> {
    return this.#limited;
  }

  stats(): MucLimitsStats {
    return {
      rooms: this.#rooms.size,
      occupants: this.#occupants.size,
      capEvictions: this.#rooms.capEvictions + this.#occupants.capEvictions,
    };
  }

  /** Releases the room buckets' store (a shared one holds connections). */
  close(): void {
    this.#rooms.close();
  }

  /** Forgets every idle entry; returns how many. Lookups also forget lazily. */
  sweep(now: number = this.#clock.now()): number {
    return this.#rooms.sweep(now) + this.#occupants.sweep(now);
  }

  /**
   * Applies reloaded options to live state: buckets keep their balance
   * (capped at the new capacity, refilled at the new rate from now), learned
   * affiliations stay, rooms on hosts no longer listed are forgotten.
   */
  reconfigure(options: MucLimitsOptions): void {
    const now = this.#clock.now();
    this.#options = options;
    this.#hosts = new Set(options.hosts);
    this.#exempt = new Set(options.exempt_affiliations);
    const listed = (roomKey: string): boolean => this.#hosts.has(roomKey.slice(roomKey.indexOf("@") + 1));
    this.#rooms.configure(roomLimits(options), now, listed);
    const per = options.per_occupant;
    for (const [key, occ] of this.#occupants.entries()) {
      if (!listed(key.slice(0, key.indexOf("/")))) {
        this.#occupants.delete(key);
        continue;
      }
      if (occ.bucket !== undefined) {
        occ.bucket = per === null ? undefined : rebucket(occ.bucket, per.event_rate, per.burst_factor, now);
      }
      if (isUseless(occ, options.max_nick_length)) this.#occupants.delete(key);
    }
    this.#occupants.reconfigure(options.idle_seconds * 1000, options.max_tracked_occupants, now);
  }

  sessionEnded(session: SessionInfo): void {
    this.#sessions.ended(session.id);
  }

  judge(stanza: StanzaView, session: SessionInfo, flow: Flow): Verdict | undefined {
    const kind = stanza.kind;
    if (this.#hosts.size === 0) return undefined;
    if (kind === "iq") {
      // A fresh bind: from here on the proxy sees every room this session joins.
      if (flow === "outbound" && session.type === "c2s" && stanza.type === "result" && stanza.firstChildName === "bind" && stanza.firstChildXmlns === NS_BIND) {
        this.#sessions.bound(session.id);
      }
      return undefined;
    }
    if (kind !== "message" && kind !== "presence") return undefined;
    if (flow === "outbound") {
      this.#observe(stanza, session, kind);
      return undefined;
    }
    const to = stanza.to;
    if (to === undefined) return undefined;
    const addr = roomAddress(to, this.#hosts);
    if (addr === undefined) return undefined;
    const type = stanza.type;
    if (kind === "message") {
      // muc-occupant-groupchat only: private messages (to room/nick) and
      // other message types are not limited by the current module.
      if (type !== "groupchat" || addr.nick !== undefined) return undefined;
      // The MUC refuses groupchat from a non-occupant before the limits run.
      if (this.#sessions.notIn(session, addr.room)) return undefined;
      return this.#charge(stanza, session, kind, addr);
    }
    // Step 1: unavailable presence is never limited; error presence is kick
    // handling, other types are answered by the MUC itself.
    if (type === "unavailable") {
      this.#sessions.sent(session, addr.room, false);
      return undefined;
    }
    if (type !== undefined) return undefined;
    const out = this.#sessions.notIn(session, addr.room);
    if (addr.nick === undefined) {
      // Presence to the bare room is the occupant's presence update (the MUC
      // redirects it to the occupant's nick); from a non-occupant the MUC
      // ignores it.
      if (out) return undefined;
    } else if (out && !hasMucX(stanza)) {
      // A join without <x xmlns='…/muc'>: the MUC answers item-not-found first.
      return undefined;
    }
    this.#lastCharge = 0;
    const v = this.#charge(stanza, session, kind, addr);
    if (v === undefined) this.#sessions.sent(session, addr.room, true, addr.nick !== undefined ? this.#lastCharge : undefined);
    return v;
  }

  /** Steps 2 to 6 of mod_muc_limits' algorithm (docs/muc-limits.md, "The algorithm, in order") for one stanza to a room. */
  #charge(stanza: StanzaView, session: SessionInfo, kind: "message" | "presence", addr: RoomAddress): Verdict | undefined {
    // The server stamps a c2s stanza's `from` with the bound JID whatever the
    // client wrote; over s2s the remote server's `from` is what it routes.
    const sender = session.type === "c2s" ? session.jid : stanza.attr("from");
    if (sender === undefined) return undefined;
    const senderKey = bareKey(sender);
    if (senderKey === undefined) return undefined;
    const now = this.#clock.now();
    const o = this.#options;
    const occKey = `${addr.room}/${senderKey}`;
    let occ = this.#occupants.get(occKey, now);

    // Step 2: affiliated senders skip every check.
    if (occ?.affiliation !== undefined && this.#exempt.has(occ.affiliation)) return undefined;

    const reply: ReplyAddressing = { name: stanza.name, to: stanza.to, from: sender, id: stanza.id, type: stanza.type };

    // Step 3: a join or nick change (a nick the sender does not hold) with a
    // long nick. Presence to the bare room keeps the nick the sender holds.
    if (kind === "presence" && addr.nick !== undefined) {
      const nick = addr.nick;
      if (nick !== occ?.nick) {
        const bytes = Buffer.byteLength(nick, "utf8");
        if (bytes > o.max_nick_length) {
          return this.#bounce("nick", undefined, tooLongReply(reply, NICK_TOO_LONG_TEXT), `nick of ${bytes} bytes`);
        }
      }
    }

    // Step 5 (step 4, creating the room bucket, is invisible: it starts full).
    let lines = 0;
    let root: Element | null = null;
    let body: string | undefined;
    if (stanza.bytes.includes("body")) {
      root = stanza.tree();
      body = root === null ? undefined : bodyOf(root);
    }
    if (body !== undefined) {
      const bytes = Buffer.byteLength(body, "utf8");
      if (bytes > o.max_char_count) {
        return this.#bounce("chars", undefined, tooLongReply(reply, MESSAGE_TOO_LONG_TEXT), `body of ${bytes} bytes`);
      }
      lines = countNewlines(body);
      if (lines > o.max_line_count) {
        return this.#bounce("lines", undefined, tooLongReply(reply, MESSAGE_TOO_LONG_TEXT), `body of ${lines} newlines`);
      }
    }
    const cost = eventCost(lines, o);

    // Step 6, occupant bucket first: a stanza it refuses never draws on the
    // room's budget, and one the room refuses costs the occupant nothing.
    const per = o.per_occupant;
    if (per !== null) {
      if (occ === undefined) {
        occ = { last: now, bucket: undefined, affiliation: undefined, nick: undefined };
        this.#occupants.insert(occKey, occ, now);
      } else {
        this.#occupants.touch(occKey, occ, now);
      }
      if (occ.bucket === undefined) occ.bucket = newBucket(per.event_rate, per.burst_factor, now);
      const shared = this.#sharedOccupants;
      if (shared !== undefined && occ.bucket !== null) {
        if (!shared.covers(`muc:${occKey}`, per.event_rate, per.event_rate * per.burst_factor, cost)) return this.#overactive(stanza, reply, root, body, "occupant");
      } else if (!covers(occ.bucket, cost, now)) return this.#overactive(stanza, reply, root, body, "occupant");
    }
    if (!this.#rooms.attempt(addr.room, senderKey, cost, now).admitted) return this.#overactive(stanza, reply, root, body, "room");
    if (per !== null) {
      if (this.#sharedOccupants !== undefined && occ?.bucket != null) this.#sharedOccupants.spend(`muc:${occKey}`, cost);
      else debit(occ?.bucket, cost, now);
    }
    this.#lastCharge = cost;
    return undefined;
  }

  #overactive(
    stanza: StanzaView,
    reply: ReplyAddressing,
    root: Element | null,
    body: string | undefined,
    bucket: RateBucket,
  ): Verdict {
    // The stanza's own <x xmlns='…/muc'> is copied into the bounce (joins).
    return this.#bounce("rate", bucket, overactiveReply(reply, body, mucXCopy(stanza, root)), `${bucket} bucket empty`);
  }

  #bounce(reason: LimitReason, bucket: RateBucket | undefined, reply: string, why: string): Verdict {
    this.#limited[reason]++;
    this.#hooks.onLimited?.(reason, bucket);
    return { action: "bounce", reply, reason: `muc_limits: ${why}` };
  }

  /**
   * Server → peer. Presence from a room carries affiliations: with status 110
   * (self-presence) the recipient's own, otherwise the occupant's named by
   * `item jid` when the room reveals it. Any presence or groupchat message
   * from a room to a user also shows the user is still there, which keeps
   * their entry from going idle.
   */
  #observe(stanza: StanzaView, session: SessionInfo, kind: "message" | "presence"): void {
    const from = stanza.attr("from");
    if (from === undefined) return;
    const addr = roomAddress(from, this.#hosts);
    if (addr === undefined || addr.nick === undefined) return;
    const type = stanza.type;
    if (kind === "message" ? type !== "groupchat" : type !== undefined && type !== "unavailable" && type !== "error") return;
    const recipient = stanza.attr("to") ?? session.jid;
    const recipientKey = recipient === undefined ? undefined : bareKey(recipient);
    const now = this.#clock.now();
    if (kind === "presence") this.#answered(stanza, session, addr.room, type, recipientKey, now);
    if (recipientKey !== undefined) {
      const key = `${addr.room}/${recipientKey}`;
      const e = this.#occupants.get(key, now);
      if (e !== undefined) this.#occupants.touch(key, e, now);
    }
    if (kind === "message" || type === "error" || !stanza.bytes.includes(NS_MUC_USER)) return;

    const item = occupantItem(stanza);
    if (item === undefined) return;
    const subject = item.self ? recipientKey : item.jid === undefined ? undefined : bareKey(item.jid);
    if (subject === undefined) return;
    // null: the item says nothing usable, keep what is known.
    const affiliation = item.affiliation;
    const nick = type === "unavailable" ? undefined : addr.nick;
    const maxNick = this.#options.max_nick_length;

    const key = `${addr.room}/${subject}`;
    let e = this.#occupants.get(key, now);
    if (e === undefined) {
      const worthKeeping = (affiliation !== undefined && affiliation !== null) || (nick !== undefined && Buffer.byteLength(nick, "utf8") > maxNick);
      if (!worthKeeping) return;
      e = { last: now, bucket: undefined, affiliation: undefined, nick: undefined };
      this.#occupants.insert(key, e, now);
    } else {
      this.#occupants.touch(key, e, now);
    }
    if (affiliation !== null) e.affiliation = affiliation;
    e.nick = nick;
    if (isUseless(e, maxNick)) this.#occupants.delete(key);
  }

  /** The server's answer to a presence the session sent to `room` (SessionRooms.answered); refunds a join that created the room. */
  #answered(stanza: StanzaView, session: SessionInfo, room: string, type: string | undefined, recipientKey: string | undefined, now: number): void {
    const cost = this.#sessions.answered(session, room, type, () => selfPresenceStatuses(stanza));
    if (cost <= 0 || recipientKey === undefined) return;
    this.#rooms.attempt(room, recipientKey, -cost, now);
    const occ = this.#occupants.get(`${room}/${recipientKey}`, now);
    if (this.#sharedOccupants !== undefined && occ?.bucket != null) this.#sharedOccupants.spend(`muc:${room}/${recipientKey}`, -cost);
    else occ?.bucket?.credit(cost, now);
  }
}
