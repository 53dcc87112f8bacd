// @xmpp/client ships no type declarations; the harness uses it untyped.
declare module "@xmpp/client";
