// Property-test mutations of a byte stream: flip, insert, delete or
// duplicate bytes at random places, with the bytes that matter to XML
// framing (markup, quotes, entity and CDATA characters, control bytes,
// UTF-8 lead and continuation bytes) drawn more often than the rest.
import fc from "fast-check";

export type Mutation = { at: number; op: "flip" | "insert" | "delete" | "dup"; byte: number; len: number };

const INTERESTING = [0x3c, 0x3e, 0x2f, 0x26, 0x3b, 0x21, 0x3f, 0x27, 0x22, 0x3d, 0x5d, 0x2d, 0x44, 0x23, 0x78, 0x00, 0x01, 0x09, 0x80, 0xbf, 0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xff];

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("flip", "insert", "delete", "dup"),
  byte: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat(255)),
  len: fc.integer({ min: 1, max: 40 }),
});

export function mutate(input: Buffer, muts: readonly Mutation[]): Buffer {
  let b = input;
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.op === "flip") b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at + 1)]);
    else if (m.op === "insert") b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]);
    else if (m.op === "delete") b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    else b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
  }
  return b;
}
