// Conditions on the local wall-clock time (docs/firewall.md, "Conditions"):
// TIME and DAY.
import type { TimeRange } from "../ast.js";
import { fail, type ParamContext, type ParamFail } from "../param.js";
import { COST_HEAD } from "../runtime.js";
import { defineCondition } from "./define.js";

/** `days` are whole weekdays ORed with the ranges (0 = Sunday). */
export type TimeSpec = { readonly name: "TIME"; readonly ranges: readonly TimeRange[]; readonly days: readonly number[] };
export type DaySpec = { readonly name: "DAY"; readonly days: readonly number[] };

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

function dayNumber(name: string): number | undefined {
  const i = (DAY_NAMES as readonly string[]).indexOf(name.slice(0, 3).toLowerCase());
  return i < 0 || name.length < 3 ? undefined : i;
}

function dayRange(from: number, to: number): number[] {
  const out: number[] = [];
  for (let d = from; ; d = (d + 1) % 7) {
    out.push(d);
    if (d === to) return out;
  }
}

function parseClock(h: string, m: string | undefined, ampm: string | undefined): number | undefined {
  let hour = Number(h);
  const minute = m === undefined ? 0 : Number(m);
  if (minute > 59) return undefined;
  if (ampm !== undefined) {
    if (hour > 12) return undefined;
    hour = (hour % 12) + (ampm.toLowerCase() === "pm" ? 12 : 0);
  } else if (hour > 24 || (hour === 24 && minute !== 0)) return undefined;
  return hour * 60 + minute;
}

function parseTime(param: string, ctx: ParamContext): TimeSpec | ParamFail {
  const ranges: TimeRange[] = [];
  const days = new Set<number>();
  let offset = 0;
  for (const rawItem of param.split(",")) {
    const item = rawItem.trim();
    const at = offset + rawItem.indexOf(item);
    offset += rawItem.length + 1;
    if (item === "") continue;
    const m = /^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$/i.exec(item);
    if (m && ((m[2] === undefined && m[3] === undefined) || (m[5] === undefined && m[6] === undefined))) {
      ctx.warn(`Prosody fails to load a time with neither minutes nor am/pm ('${item}'); write e.g. 9:00-17:00 for portable files`, at);
    }
    if (m) {
      const start = parseClock(m[1]!, m[2], m[3]);
      const end = parseClock(m[4]!, m[5], m[6]);
      if (start === undefined || end === undefined) return fail(`invalid time in range '${item}'`, at);
      if (start === end) ctx.warn(`time range '${item}' is empty and never matches`, at);
      ranges.push({ start, end: end === 1440 ? 0 : end });
      continue;
    }
    const day = /^[A-Za-z]+$/.test(item) ? dayNumber(item) : undefined;
    if (day !== undefined) {
      ctx.warn(
        `weekday '${item}' in TIME matches that whole day (the documented meaning); Prosody fails to load this, use DAY: for portable files`,
        at,
      );
      days.add(day);
      continue;
    }
    return fail(`Unable to parse time range: '${item}' (expected e.g. 9am-5pm or 14:00-15:30)`, at);
  }
  if (ranges.length === 0 && days.size === 0) return fail("expected a list of time ranges");
  return { name: "TIME", ranges, days: [...days].sort() };
}

function parseDay(param: string): DaySpec | ParamFail {
  const days = new Set<number>();
  let offset = 0;
  for (const rawItem of param.split(",")) {
    const item = rawItem.trim();
    const at = offset + rawItem.indexOf(item);
    offset += rawItem.length + 1;
    if (item === "") continue;
    const range = /^([A-Za-z]+)\s*-\s*([A-Za-z]+)$/.exec(item);
    if (range) {
      const a = dayNumber(range[1]!);
      const b = dayNumber(range[2]!);
      if (a === undefined || b === undefined) return fail(`Unknown day name in '${item}'`, at);
      for (const d of dayRange(a, b)) days.add(d);
      continue;
    }
    const d = /^[A-Za-z]+$/.test(item) ? dayNumber(item) : undefined;
    if (d === undefined) return fail(`Unable to parse day/day range: '${item}'`, at);
    days.add(d);
  }
  if (days.size === 0) return fail("Expected a list of days or day ranges");
  return { name: "DAY", days: [...days].sort() };
}

export const TIME = defineCondition<TimeSpec>({
  names: ["TIME"],
  param: "required",
  parse: (p = "", _name, ctx) => parseTime(p, ctx),
  cost: COST_HEAD,
  compile(spec, cx) {
    const ranges = spec.ranges;
    const days = new Set(spec.days);
    const localTime = cx.env.localTime;
    return () => {
      const t = localTime();
      if (days.has(t.weekday)) return true;
      const m = t.hour * 60 + t.minute;
      return ranges.some((r) => (r.start <= r.end ? m >= r.start && m < r.end : m >= r.start || m < r.end));
    };
  },
});

export const DAY = defineCondition<DaySpec>({
  names: ["DAY"],
  param: "required",
  parse: (p = "") => parseDay(p),
  cost: COST_HEAD,
  compile(spec, cx) {
    const days = new Set(spec.days);
    const localTime = cx.env.localTime;
    return () => days.has(localTime().weekday);
  },
});

export const CLOCK = [TIME, DAY] as const;
