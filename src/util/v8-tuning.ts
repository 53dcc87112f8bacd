// V8 settings for the data path, applied once when the proxy starts
// (startProxy). docs/performance.md, "V8's inlining budget", says why and
// what it measured.
//
// TurboFan inlines a hot function's callees only until their bytecode adds
// up to a budget per optimised function (920 bytes by default in Node 20's
// V8, as `node --v8-options` lists it). The per-stanza path is a chain of small steps (framer
// callback → kind → view → head → tracker → firewall chain → write batch),
// and the default budget runs out a few calls deep, so the deepest and most
// frequent steps (the head reader, value decoding, the address forms) stay
// calls. A larger budget lets them inline.

import { setFlagsFromString } from "node:v8";

/** The cumulative inlining budget (bytes of bytecode) the proxy runs with; under V8's absolute cap (4600). */
export const INLINE_BUDGET = 4000;

const FLAG = "max-inlined-bytecode-size-cumulative";

/**
 * Raise TurboFan's cumulative inlining budget to INLINE_BUDGET, unless the
 * process was started with the flag (either spelling): the operator's value
 * wins. Takes effect for functions optimised from now on, so call it before
 * traffic flows. Returns the budget it set, or undefined when it left the
 * operator's.
 */
export function tuneV8(execArgv: readonly string[] = process.execArgv, set: (flags: string) => void = setFlagsFromString): number | undefined {
  const given = execArgv.some((a) => a.replace(/_/g, "-").startsWith(`--${FLAG}`));
  if (given) return undefined;
  set(`--${FLAG}=${INLINE_BUDGET}`);
  return INLINE_BUDGET;
}
