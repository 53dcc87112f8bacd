// The MUC limits' cost per groupchat message, in process: MucLimitsStage.judge
// on a prepared stanza view, a fake clock one millisecond on per message, a
// room of `senders` unaffiliated senders taking turns (a flood: most are
// refused). Prints ns per message for 1, 5, 25 and 100 senders.
//
//   npx tsx bench/muc-fair.ts [--root=DIR]
//
// --root runs the same measurement against another checkout's src/ (an A/B
// of the limiter: the stage's interface is the same).
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const rootArg = process.argv.find((a) => a.startsWith("--root="))?.slice("--root=".length);
const root = resolve(rootArg ?? new URL("..", import.meta.url).pathname);
const load = (p: string): Promise<Record<string, any>> => import(pathToFileURL(resolve(root, p)).href);

const { MucLimitsStage } = await load("src/muc/muc-limits.ts");
const { parseMucLimits } = await load("src/muc/config.ts");
const { FakeClock } = await load("src/shaping/clock.ts");
const { Stanza } = await load("src/xml/stanza.ts");
const { LocalRoomBuckets } = await load("src/muc/room-buckets.ts");

const HOST = "muc.example";
const MESSAGES = 200_000;

function run(senders: number): number {
  const parsed = parseMucLimits({ hosts: [HOST], event_rate: 10, burst_factor: 3 });
  if (!parsed.ok) throw new Error(parsed.message);
  const clock = new FakeClock(1_000_000);
  const stage = new MucLimitsStage(parsed.value, clock);
  const sessions = Array.from({ length: senders }, (_, i) => ({
    id: `s${i}`, listener: "c2s", type: "c2s", ip: "192.0.2.1", port: 1, jid: `u${i}@example.org/r`, domain: "example.org", authenticated: true,
  }));
  const bytes = Buffer.from(`<message to='room@${HOST}' type='groupchat' id='m'><body>hello there</body></message>`);
  // A fresh view per message, as the session builds one; built outside the timed loop.
  const views = Array.from({ length: 1000 }, () => new Stanza(bytes, "jabber:client"));
  for (let i = 0; i < 20_000; i++) stage.judge(views[i % 1000], sessions[i % senders], "inbound"); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) {
    clock.advance(1);
    stage.judge(views[i % 1000], sessions[i % senders], "inbound");
  }
  return Number(process.hrtime.bigint() - t0) / MESSAGES;
}

/** The room store alone: one attempt (or, before the fair limiter, one poll) per message. */
function store(senders: number): number {
  const rooms = new LocalRoomBuckets();
  rooms.configure({ rate: 10, burst: 3, idleMs: 3_600_000, maxRooms: 10_000, baseCost: 1, activeMs: 60_000, maxSenders: 1000 }, 0);
  const keys = Array.from({ length: senders }, (_, i) => `u${i}@example.org`);
  const once = typeof rooms.attempt === "function"
    ? (i: number, now: number) => rooms.attempt("room@muc.example", keys[i % senders], 1, now)
    : (_i: number, now: number) => rooms.take("room@muc.example", 1, now);
  for (let i = 0; i < 20_000; i++) once(i, i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) once(i, 20_000 + i);
  return Number(process.hrtime.bigint() - t0) / MESSAGES;
}

console.log(`| senders in the room | stage.judge, ns per message | room store alone, ns per message |`);
console.log("| ---: | ---: | ---: |");
for (const n of [1, 5, 25, 100]) {
  const best = Math.min(run(n), run(n), run(n));
  const alone = Math.min(store(n), store(n), store(n));
  console.log(`| ${n} | ${best.toFixed(0)} | ${alone.toFixed(0)} |`);
}
console.log(`(${root})`);
