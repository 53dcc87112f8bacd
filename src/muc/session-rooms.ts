// Which rooms each c2s session is in, as far as the proxy can tell from what
// it forwarded and what the server answered: the MUC refuses groupchat from
// a non-occupant (and ignores its presence to the bare room) before the
// limits run, so the stage must not charge those. Also remembers what a
// pending join was charged, refunded when the server says the join created
// the room.
import type { SessionInfo } from "../policy/pipeline.js";

/**
 * What a c2s session is to one room: presences sent and not yet answered,
 * whether the last answer left it joined, and what its pending join was
 * charged.
 */
interface RoomPresence {
  pending: number;
  joined: boolean;
  joinCharge: number;
}

/**
 * One c2s session's rooms. `complete` while the proxy has seen everything the
 * session did since it was bound (not resumed, no cap hit): then a room it
 * has no entry for is a room it is not in.
 */
interface SessionEntry {
  complete: boolean;
  readonly rooms: Map<string, RoomPresence>;
}

/** Most rooms followed per session; past it the session is no longer known completely. */
const MAX_ROOMS_PER_SESSION = 256;

export class SessionRooms {
  /** By session id. */
  readonly #sessions = new Map<string, SessionEntry>();

  /** A fresh bind: from here on the proxy sees every room this session joins. */
  bound(sessionId: string): void {
    this.#sessions.set(sessionId, { complete: true, rooms: new Map() });
  }

  ended(sessionId: string): void {
    this.#sessions.delete(sessionId);
  }

  /** True when the proxy knows `session` is not in `room` (a fresh c2s session that never joined it, or left). */
  notIn(session: SessionInfo, room: string): boolean {
    if (session.type !== "c2s") return false;
    const s = this.#sessions.get(session.id);
    return s !== undefined && s.complete && !s.rooms.has(room);
  }

  /**
   * The session sent a presence to `room` that went through: one more answer
   * pending. Available presence starts following the room; `joinCharge` (a
   * presence to room/nick) is what the join cost, while not joined yet.
   */
  sent(session: SessionInfo, room: string, available: boolean, joinCharge?: number): void {
    const e = this.#presence(session, room, available);
    if (e === undefined) return;
    e.pending++;
    if (joinCharge !== undefined && !e.joined) e.joinCharge = joinCharge;
  }

  /**
   * The server's answer to a presence the session sent to `room`: an error,
   * or a self-presence (its status codes from `selfStatuses`, undefined when
   * it is not one). Each answers one pending presence; a self-presence says
   * whether the session is now in the room (a nick change's unavailable,
   * status 303, does not take it out). Returns what to refund: the join's
   * charge when status 201 says the join created the room (the creator's
   * first join is free), else 0.
   */
  answered(session: SessionInfo, room: string, type: string | undefined, selfStatuses: () => readonly string[] | undefined): number {
    const s = session.type === "c2s" ? this.#sessions.get(session.id) : undefined;
    const e = s?.rooms.get(room);
    if (s === undefined || e === undefined) return 0;
    let statuses: readonly string[] = [];
    if (type !== "error") {
      const found = selfStatuses();
      if (found === undefined) return 0;
      statuses = found;
      if (type === undefined) e.joined = true;
      else if (!statuses.includes("303")) e.joined = false;
    }
    if (e.pending > 0) e.pending--;
    const refund = statuses.includes("201") ? e.joinCharge : 0;
    e.joinCharge = 0;
    if (!e.joined && e.pending === 0) s.rooms.delete(room);
    return refund;
  }

  /** The session's entry for `room`, created when `create` (c2s only; undefined past the cap). */
  #presence(session: SessionInfo, room: string, create: boolean): RoomPresence | undefined {
    if (session.type !== "c2s") return undefined;
    let s = this.#sessions.get(session.id);
    if (s === undefined) {
      if (!create) return undefined;
      // A session whose bind the proxy did not see (resumed): never complete.
      s = { complete: false, rooms: new Map() };
      this.#sessions.set(session.id, s);
    }
    let e = s.rooms.get(room);
    if (e === undefined && create) {
      if (s.rooms.size >= MAX_ROOMS_PER_SESSION) {
        s.complete = false;
        return undefined;
      }
      e = { pending: 0, joined: false, joinCharge: 0 };
      s.rooms.set(room, e);
    }
    return e;
  }
}
