"""The INVITE's 487 may overtake the CANCEL's own 200: a stateful proxy (Kamailio in the lab)
relays the callee's 487 and answers the CANCEL itself, in either order. The caller's
``cancel()`` must still return the CANCEL's status, not fail because the rejected INVITE
released the call first. The peer is a scripted UAS on a real loopback socket that answers in
the overtaking order."""

from __future__ import annotations

import asyncio

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.message import Request, serialize
from avatar_mf.sip.parser import parse_message
from avatar_mf.ue import CallRejected, UeCall

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"


class _OvertakingUas(asyncio.DatagramProtocol):
    """180 to the INVITE; on CANCEL, the INVITE's 487 first, the CANCEL's 200 ``delay`` later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None
        self.invite: Request | None = None
        self.methods: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDPTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        if not isinstance(msg, Request):
            return
        self.methods.append(msg.method)
        assert self.transport is not None
        if msg.method == "INVITE":
            self.invite = msg
            self.transport.sendto(serialize(make_response(msg, 180, to_tag="uas")), addr)
        elif msg.method == "CANCEL" and self.invite is not None:
            self.transport.sendto(serialize(make_response(self.invite, 487, to_tag="uas")), addr)
            asyncio.get_running_loop().call_later(
                self.delay,
                self.transport.sendto,
                serialize(make_response(msg, 200, to_tag="uas")),
                addr,
            )


async def test_cancel_answered_after_the_invites_487() -> None:
    loop = asyncio.get_running_loop()
    transport, uas = await loop.create_datagram_endpoint(
        lambda: _OvertakingUas(delay=0.2), local_addr=(HOST, 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        call = UeCall.dial(f"sip:ue2@{HOST}:{port}", HOST, port, ice=False)
        connecting = asyncio.ensure_future(call.connect())
        for _ in range(100):  # bounded: the 180 comes at once on loopback
            if call.timing.provisional is not None:
                break
            await asyncio.sleep(0.02)
        assert call.timing.provisional is not None
        assert await call.cancel() == 200
        with pytest.raises(CallRejected) as rejected:
            await connecting
        assert rejected.value.status == 487
        assert call.sip.closed  # released once the CANCEL was answered
        assert uas.methods[:2] == ["INVITE", "CANCEL"] and "ACK" in uas.methods
    finally:
        transport.close()
