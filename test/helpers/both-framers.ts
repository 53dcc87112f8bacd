// Framer tests run against both implementations, the JS framer and the
// WebAssembly one: `test` registers each case once per implementation, and
// `makeFramer` builds the one of the case that is running.
import { test as nodeTest } from "node:test";
import { Framer, type FrameSink, type FramerLimits, type StreamFramer } from "../../src/xml/framer.js";
import { WasmFramer } from "../../src/xml/framer-wasm.js";

type MakeFramer = (sink: FrameSink, limits: FramerLimits) => StreamFramer;

const IMPLEMENTATIONS: Array<[string, MakeFramer]> = [
  ["js", (sink, limits) => new Framer(sink, limits)],
  ["wasm", (sink, limits) => new WasmFramer(sink, limits)],
];

let current: MakeFramer = IMPLEMENTATIONS[0]![1];

export function makeFramer(sink: FrameSink, limits: FramerLimits): StreamFramer {
  return current(sink, limits);
}

export function test(name: string, fn: () => void): void {
  for (const [impl, make] of IMPLEMENTATIONS) {
    nodeTest(`${impl}: ${name}`, () => {
      current = make;
      fn();
    });
  }
}
