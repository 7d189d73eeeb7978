"""A recording :class:`~avatar_mf.transport.base.TransportSink` for transport tests: it keeps
what a transport hands up and can answer requests through the transport, as the endpoint
does (a fake, not a mock: the real transport runs over real loopback sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from avatar_mf.sip.build import make_response
from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.message import Message, Request, serialize
from avatar_mf.sip.peer import Peer
from avatar_mf.transport.base import SipTransport


@dataclass
class RecordingSink:
    """Keeps every message and parse error; ``answer`` makes it reply 200 to requests."""

    allow: bool = True
    answer: SipTransport | None = None
    messages: list[tuple[Message, Peer]] = field(default_factory=list)
    errors: list[tuple[SipParseError, Peer]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def admit(self, peer: Peer, size: int) -> bool:
        return self.allow

    def message_received(self, message: Message, peer: Peer) -> None:
        self.messages.append((message, peer))
        self.arrived.set()
        if self.answer is not None and isinstance(message, Request) and message.method != "ACK":
            response = make_response(message, 200, to_tag="t1")
            self.answer.send(serialize(response), peer.host, peer.port, peer.connection_id)

    def bad_message(self, error: SipParseError, peer: Peer) -> None:
        self.errors.append((error, peer))
        self.arrived.set()

    async def wait(self, count: int) -> None:
        """Until ``count`` messages and errors together have arrived (5 s at most)."""
        async with asyncio.timeout(5.0):
            while len(self.messages) + len(self.errors) < count:
                self.arrived.clear()
                await self.arrived.wait()


def options(transport: str, branch: str = "z9hG4bK-1", *, content_length: bool = True) -> bytes:
    """An OPTIONS request as a SIP client over ``transport`` would send it."""
    text = (
        "OPTIONS sip:mf@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} df7jal23ls0d.invalid;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:mf@127.0.0.1>\r\n"
        f"Call-ID: {branch}@client\r\n"
        "CSeq: 1 OPTIONS\r\n"
    )
    if content_length:
        text += "Content-Length: 0\r\n"
    return (text + "\r\n").encode()


async def eventually(condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds (checked every 10 ms, 5 s at most)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")
