// Just enough of @xmpp/xml (which ships no types) for bench/framer.ts.
declare module "@xmpp/xml" {
  import { EventEmitter } from "node:events";
  export class Parser extends EventEmitter {
    write(data: string): void;
  }
}
