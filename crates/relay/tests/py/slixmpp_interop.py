"""slixmpp (a third-party XMPP library) against cryptocat-server over TCP + STARTTLS.

Two slixmpp clients each register in-band (XEP-0077) with random credentials, log in
(SCRAM-SHA-256, the relay's self-signed certificate trusted through --cafile), and join
ROOM. Alice sends a Cryptocat payload message (the base64 envelope given with --payload),
which Bob must receive intact; then a plaintext <body> message, which must come back to
Alice as a policy-violation error and must reach nobody: Bob only ever sees payloads, and a
second payload sent after the plaintext arrives at Bob as the next message.

Prints one "OK ..." line per check and exits 0; exits 1 with "FAIL ..." otherwise.
Driven by crates/relay/tests/relay/slixmpp.rs.
"""

import argparse
import asyncio
import secrets
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_PAYLOAD = "urn:xmpp:cryptocat:1"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class Member(slixmpp.ClientXMPP):
    def __init__(self, domain, cafile, label):
        user = secrets.token_hex(8)
        super().__init__(f"{user}@{domain}/{label}", secrets.token_hex(16))
        self.ca_certs = cafile
        self.label = label
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0077", "xep_0199"):
            self.register_plugin(plugin)
        self.plugin["xep_0077"].force_registration = True
        self.started = asyncio.get_event_loop().create_future()
        self.payloads = asyncio.Queue()
        self.errors = asyncio.Queue()
        self.bodies = []
        self.add_event_handler("register", self.on_register)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        # slixmpp's own "message" events fire only for messages with a <body>: watch every
        # message stanza instead.
        self.register_handler(
            Callback("every message", MatchXPath(f"{{{self.default_ns}}}message"), self.on_message)
        )

    async def on_register(self, _form):
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        await iq.send()

    async def on_start(self, _event):
        if not self.started.done():
            self.started.set_result(True)

    def on_failed_auth(self, _event):
        if not self.started.done():
            self.started.set_exception(RuntimeError(f"{self.label}: authentication failed"))

    def on_message(self, msg):
        xml = msg.xml
        if msg["type"] == "error":
            error = xml.find(f"{{{self.default_ns}}}error")
            conditions = [] if error is None else [
                c.tag.split("}")[-1] for c in error if c.tag.startswith(f"{{{NS_STANZAS}}}")
            ]
            self.errors.put_nowait(next((c for c in conditions if c != "text"), ""))
            return
        if xml.find(f"{{{self.default_ns}}}body") is not None:
            self.bodies.append(msg["body"])
        payload = xml.find(f"{{{NS_PAYLOAD}}}payload")
        if payload is not None:
            self.payloads.put_nowait((str(msg["from"]), msg["type"], payload.text))


def fail(why):
    print(f"FAIL {why}", flush=True)
    sys.exit(1)


def payload_message(member, room, b64):
    msg = member.make_message(mto=room, mtype="groupchat")
    el = ET.Element(f"{{{NS_PAYLOAD}}}payload")
    el.text = b64
    msg.xml.append(el)
    return msg


async def next_payload(member, room_jid, nick, want):
    """The next payload Bob sees from `nick` (his own echoes skipped) must be `want`."""
    while True:
        frm, kind, text = await asyncio.wait_for(member.payloads.get(), 10)
        if frm == f"{room_jid}/{nick}":
            if kind != "groupchat" or text != want:
                fail(f"{member.label} got {kind} payload {text!r}, wanted {want!r}")
            return


async def run(args):
    room = f"{args.room}@conference.{args.domain}"
    alice = Member(args.domain, args.cafile, "alice")
    bob = Member(args.domain, args.cafile, "bob")
    for m in (alice, bob):
        m.connect(host=args.host, port=args.port)
    await asyncio.wait_for(asyncio.gather(alice.started, bob.started), 15)
    print("OK registered and logged in", flush=True)
    for m, nick in ((alice, "alice"), (bob, "bob")):
        await m.plugin["xep_0045"].join_muc_wait(room, nick, maxstanzas=0, timeout=10)
    print("OK joined", flush=True)

    payload_message(alice, room, args.payload).send()
    await next_payload(bob, room, "alice", args.payload)
    print("OK payload-received", flush=True)

    alice.send_message(mto=room, mbody=args.plaintext, mtype="groupchat")
    condition = await asyncio.wait_for(alice.errors.get(), 10)
    if condition != "policy-violation":
        fail(f"plaintext answered with {condition!r}")
    print("OK policy-violation", flush=True)

    # The relay handles a stream in order: once this marker reached Bob, the plaintext
    # would have reached him before it.
    payload_message(alice, room, args.payload).send()
    await next_payload(bob, room, "alice", args.payload)
    await asyncio.sleep(0.3)
    for m in (alice, bob):
        if m.bodies:
            fail(f"{m.label} received a plaintext body")
        if not m.errors.empty():
            fail(f"{m.label} got an unexpected error")
    print("OK plaintext-reached-nobody", flush=True)
    for m in (alice, bob):
        m.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--cafile", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--plaintext", required=True)
    args = p.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(run(args), 40))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - any failure is reported and fails the test
        fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
