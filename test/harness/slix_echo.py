#!/usr/bin/python3
"""slixmpp interop check for the xmpp-guard tests.

Logs in two accounts (sender, receiver) over plain TCP (or STARTTLS), the
sender sends N chat messages to the receiver's full JID, and the receiver counts
the ones tagged with this run's id. Prints one line

    RESULT {"sent": N, "received": M, ...}

and exits 0 only when all N arrived within --timeout seconds (1 otherwise,
2 on usage errors). Needs Debian's python3-slixmpp (1.8): run it with
/usr/bin/python3, since another python3 earlier in PATH may not see it.
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys
import time
import uuid

# slixmpp logs a notice about its pure-Python stringprep at import time.
logging.getLogger("slixmpp.stringprep").setLevel(logging.ERROR)
import slixmpp  # noqa: E402


def build(args, user, password, resource):
    c = slixmpp.ClientXMPP(f"{user}@{args.domain}/{resource}", password)
    mechs = c["feature_mechanisms"]
    if args.mech:
        mechs.use_mech = args.mech
    if args.tls == "none":
        # slixmpp refuses PLAIN on an unencrypted stream unless told otherwise.
        mechs.unencrypted_plain = True
    elif args.cafile:
        # Verify the server certificate (name included) against this file only.
        c.ssl_context = ssl.create_default_context(cafile=args.cafile)
    else:
        # Test servers use throwaway self-signed certificates.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.ssl_context = ctx
    return c


def dial(args, c):
    if args.tls == "none":
        c.connect((args.host, args.port), force_starttls=False, disable_starttls=True)
    elif args.tls == "direct":
        c.connect((args.host, args.port), use_ssl=True, disable_starttls=True)
    else:
        c.connect((args.host, args.port), force_starttls=True)


async def exchange(args):
    run_id = uuid.uuid4().hex[:10]
    sender = build(args, args.user1, args.pass1, "slix-send")
    receiver = build(args, args.user2, args.pass2, "slix-recv")
    seen = set()
    all_in = asyncio.get_running_loop().create_future()

    def on_message(msg):
        body = msg["body"]
        if msg["type"] != "chat" or not body.startswith(run_id + ":"):
            return
        seen.add(body)
        if len(seen) >= args.n and not all_in.done():
            all_in.set_result(None)

    receiver.add_event_handler("message", on_message)

    # A rejected password ends in failed_all_auth; stop at once instead of
    # waiting for the login timeout.
    auth_failed = asyncio.get_running_loop().create_future()
    for c in (receiver, sender):
        c.add_event_handler("failed_all_auth", lambda _e, jid=c.boundjid.bare: auth_failed.done()
                            or auth_failed.set_result(jid))

    t_start = time.monotonic()
    # Arm the waits first: a fast login can fire session_start during connect().
    sessions = asyncio.gather(*(c.wait_until("session_start", timeout=args.timeout)
                                for c in (receiver, sender)))
    for c in (receiver, sender):
        dial(args, c)
    await asyncio.wait([sessions, auth_failed], return_when=asyncio.FIRST_COMPLETED)
    if auth_failed.done():
        sessions.cancel()
        for c in (sender, receiver):
            c.disconnect(wait=0)
        raise RuntimeError(f"authentication failed for {auth_failed.result()}")
    await sessions  # re-raises a login timeout
    login_s = time.monotonic() - t_start

    to = f"{args.user2}@{args.domain}/slix-recv"
    t_send = time.monotonic()
    for i in range(args.n):
        sender.send_message(mto=to, mbody=f"{run_id}:{i}", mtype="chat")
        if i % 100 == 99:
            await asyncio.sleep(0)  # give the writer a turn
    try:
        await asyncio.wait_for(all_in, args.timeout)
    except asyncio.TimeoutError:
        pass
    elapsed = time.monotonic() - t_send

    for c in (sender, receiver):
        c.disconnect(wait=1)
    await asyncio.sleep(0.2)
    return {
        "sent": args.n,
        "received": len(seen),
        "login_s": round(login_s, 3),
        "elapsed_s": round(elapsed, 3),
        "tls": args.tls,
        "mech": args.mech or "auto",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--user1", required=True)
    p.add_argument("--pass1", required=True)
    p.add_argument("--user2", required=True)
    p.add_argument("--pass2", required=True)
    p.add_argument("-n", type=int, default=50, help="messages to send (default 50)")
    p.add_argument("--mech", default="PLAIN", help="SASL mechanism; '' lets slixmpp choose (default PLAIN)")
    p.add_argument("--tls", choices=["none", "starttls", "direct"], default="none")
    p.add_argument("--cafile", default="", help="verify the server certificate against this PEM file")
    p.add_argument("--timeout", type=float, default=15, help="seconds for login, and again for delivery")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s %(message)s")
    if not args.verbose:
        # slixmpp leaves internal tasks pending at exit; asyncio complains loudly.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(asyncio.wait_for(exchange(args), args.timeout * 2 + 5))
    except asyncio.TimeoutError:
        result = {"sent": args.n, "received": 0, "error": "timeout (login did not complete)"}
    except Exception as e:  # noqa: BLE001 - report any failure as a RESULT line
        result = {"sent": args.n, "received": 0, "error": f"{type(e).__name__}: {e}"}
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if result.get("received") == args.n and "error" not in result else 1)


if __name__ == "__main__":
    main()
