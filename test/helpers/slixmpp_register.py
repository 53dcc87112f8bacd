#!/usr/bin/python3
# In-band registration (XEP-0077) with slixmpp's xep_0077 plugin, for the
# integration tests: connect in clear to HOST:PORT (the proxy, which sits in
# front of a Prosody that counts loopback as secure), fetch the form, submit
# USERNAME/PASSWORD, print one JSON line with the outcome, disconnect.
# Usage: /usr/bin/python3 slixmpp_register.py HOST PORT DOMAIN USERNAME PASSWORD
# Bounded: gives up after 15 s with {"result": "timeout"}.
import asyncio
import json
import logging
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

logging.basicConfig(level=logging.CRITICAL)


class Registrar(slixmpp.ClientXMPP):
    def __init__(self, jid, password, username):
        super().__init__(jid, password)
        self.username = username
        self.outcome = None
        self.done = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0066")
        self.register_plugin("xep_0077")
        self["xep_0077"].force_registration = True
        # slixmpp 1.8 queues every stanza until the session has started, which
        # never happens before registration; its register example hangs the same way.
        self._always_send_everything = True
        self.add_event_handler("register", self.on_register)
        self.add_event_handler("disconnected", self.on_disconnected)

    def finish(self, outcome):
        if not self.done.done():
            self.done.set_result(outcome)

    async def on_register(self, form):
        resp = self.Iq()
        resp["type"] = "set"
        resp["register"]["username"] = self.username
        resp["register"]["password"] = self.password
        try:
            await resp.send(timeout=10)
            self.finish({"result": "ok"})
        except IqError as e:
            err = e.iq["error"]
            self.finish({"result": "error", "type": err["type"], "condition": err["condition"], "text": err["text"], "xml": str(e.iq)})
        except IqTimeout:
            self.finish({"result": "timeout"})
        self.disconnect()

    def on_disconnected(self, _event):
        self.finish({"result": "disconnected"})


async def main():
    host, port, domain, username, password = sys.argv[1:6]
    # The JID's localpart is only a placeholder: registration sends `username`
    # as given, so invalid names reach the server untouched by JID parsing.
    xmpp = Registrar(f"placeholder@{domain}", password, username)
    xmpp.connect((host, int(port)), use_ssl=False, force_starttls=False, disable_starttls=True)
    try:
        outcome = await asyncio.wait_for(xmpp.done, 15)
    except asyncio.TimeoutError:
        outcome = {"result": "timeout"}
    print(json.dumps(outcome), flush=True)
    xmpp.disconnect()


asyncio.run(main())
