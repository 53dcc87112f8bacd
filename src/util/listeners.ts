// One table of listener functions put on an event emitter and taken off
// again. The sockets of every session share one function per event instead
// of a closure each: EventEmitter calls a listener with the emitter as
// `this`, and the function finds its owner through a property of it.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

/** Event name and listener, in the order they are added. */
export type Listeners = readonly (readonly [event: string, listener: Listener])[];

export function listen(emitter: { on(event: string, listener: Listener): unknown }, listeners: Listeners): void {
  for (const [event, listener] of listeners) emitter.on(event, listener);
}

export function unlisten(emitter: { off(event: string, listener: Listener): unknown }, listeners: Listeners): void {
  for (const [event, listener] of listeners) emitter.off(event, listener);
}
