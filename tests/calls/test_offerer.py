"""The MF as offerer (``calls/offerer.py``): its offer, the answers it refuses, and a real
association with an answerer, on loopback. The answerer is the MF's own room factory (the same
code any UE's answer is checked against), so both ends are real data channel stacks."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.calls.offerer import OFFER_STREAMS, CallOfferFactory, CallOfferSession
from avatar_mf.channels.base import ChannelContext, ChannelService
from avatar_mf.config import AppConfig
from avatar_mf.media import CertificateStore, DataChannelEndpointFactory
from avatar_mf.sdp.datachannel import parse_datachannel_offer
from avatar_mf.sdp.model import parse_sdp
from avatar_mf.sip.errors import SipError
from avatar_mf.ua.media_seam import CallInfo

LEG2 = CallInfo(
    call_id="leg2",
    request_uri="sip:bob@ims.example.net",
    from_uri="sip:alice@ims.example.net",
    to_uri="sip:bob@ims.example.net",
    identity="sip:bob@ims.example.net",
    contact="",
    source_host="127.0.0.1",
    room="#pair-1",
)
UE2 = dataclasses.replace(LEG2, call_id="ue2", room="", contact="<sip:ue2@127.0.0.1>")


def make_factory() -> CallSessionFactory:
    media = DataChannelEndpointFactory(
        CertificateStore.generate(), media_host="127.0.0.1", setup_timeout=5.0
    )
    return CallSessionFactory(media, AppConfig.model_validate({}))


async def make_offer(factory: CallSessionFactory) -> CallOfferSession:
    session = await CallOfferFactory(factory).create_offer(LEG2, lambda _r: None)
    assert isinstance(session, CallOfferSession)
    return session


async def test_the_offer_is_one_datachannel_line_with_the_avatar_streams() -> None:
    """TS 26.114 6.2.10 / RFC 8841: UDP/DTLS/SCTP, actpass, fingerprint, tls-id, dcmaps."""
    factory = make_factory()
    session = await make_offer(factory)
    try:
        offer = parse_sdp(session.local_sdp)
        assert len(offer.media) == 1
        dc = parse_datachannel_offer(offer, 0)
        assert dc.setup == "actpass" and dc.ice is None and dc.tls_id
        assert dc.remote_address == "127.0.0.1" and dc.remote_port > 0
        assert [d.stream_id for d in dc.dcmaps] == [d.stream_id for d in OFFER_STREAMS]
        assert {d.subprotocol for d in dc.dcmaps} >= {
            "3gpp-ar-metadata",
            "3gpp-ar-animation",
            "avatar-mf-transfer",
        }
        assert session in factory.sessions
    finally:
        await session.close()
    assert session not in factory.sessions


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: b"",
        lambda a: b"v=0\r\nnot sdp",
        lambda a: re.sub(rb"m=application \d+", b"m=application 0", a),
        lambda a: a.replace(b"a=setup:active", b"a=setup:actpass").replace(
            b"a=setup:passive", b"a=setup:actpass"
        ),
        lambda a: a + b'a=dcmap:2000 subprotocol="x"\r\n',
    ],
    ids=["empty", "not-sdp", "port-0", "actpass", "unoffered-stream"],
)
async def test_an_unusable_answer_is_refused_488(mangle: object) -> None:
    factory = make_factory()
    offerer = await make_offer(factory)
    answerer = await factory.create(UE2, offerer.local_sdp, lambda _r: None)
    try:
        answer = answerer.local_sdp
        bad = mangle(answer)  # type: ignore[operator]
        assert bad != answer
        with pytest.raises(SipError) as err:
            await offerer.accept_answer(bad)
        assert err.value.status == 488
    finally:
        await offerer.close()
        await answerer.close()


class Echo:
    """A channel service that answers each message with ``echo:`` + it."""

    def __init__(self, channel: ChannelContext) -> None:
        self.channel = channel

    def on_message(self, data: str | bytes) -> None:
        self.channel.send(f"echo:{data!s}")

    def on_close(self) -> None:
        pass


async def test_offer_answer_opens_the_channels_and_carries_messages() -> None:
    """The MF's offer answered by an answerer: both start, the avatar channels open, a message
    from the offerer's service reaches the answerer's and back; the room goes to services."""
    offer_side = make_factory()
    answer_side = make_factory()
    opened: list[tuple[str, str]] = []
    received: list[str | bytes] = []
    got = asyncio.Event()

    def offer_service(channel: ChannelContext) -> ChannelService:
        opened.append((channel.info.call_id, channel.info.room))

        class Record:
            def on_message(self, data: str | bytes) -> None:
                received.append(data)
                got.set()

            def on_close(self) -> None:
                pass

        if channel.info.stream_id == 1000:
            channel.send("hello")
        return Record()

    offer_side.services["3gpp-ar-metadata"] = offer_service
    answer_side.services["3gpp-ar-metadata"] = Echo
    offerer = await make_offer(offer_side)
    answerer = await answer_side.create(UE2, offerer.local_sdp, lambda _r: None)
    assert isinstance(answerer, CallMediaSession)
    try:
        await offerer.accept_answer(
            answerer.local_sdp, '<sip:ue2@127.0.0.1>;+sip.3gpp-avatar-support="animation"'
        )
        answerer.answer_sent()
        offerer.answer_sent()
        async with asyncio.timeout(10):
            await got.wait()
        assert received == ["echo:hello"]
        assert opened == [("leg2", "#pair-1")]
        # The MF's current description names the role the answer gave it.
        local = parse_datachannel_offer(parse_sdp(offerer.local_sdp), 0)
        assert local.setup in ("active", "passive")
        assert local.setup != parse_datachannel_offer(parse_sdp(answerer.local_sdp), 0).setup
    finally:
        await offerer.close()
        await answerer.close()
    assert offer_side.media.active_sessions == 0


async def test_a_reoffer_from_ue2_keeps_the_association() -> None:
    """RFC 8842 5.3: UE2 re-offers with its tls-id unchanged: the MF answers on the live
    association, keeping its own tls-id and the DTLS role the first answer gave it."""
    offer_side = make_factory()
    answer_side = make_factory()
    offerer = await make_offer(offer_side)
    answerer = await answer_side.create(UE2, offerer.local_sdp, lambda _r: None)
    try:
        await offerer.accept_answer(answerer.local_sdp)
        before = parse_datachannel_offer(parse_sdp(offerer.local_sdp), 0)
        dc = offerer.dc
        ue2_setup = parse_datachannel_offer(parse_sdp(answerer.local_sdp), 0).setup
        reoffer = answerer.local_sdp.replace(f"a=setup:{ue2_setup}".encode(), b"a=setup:actpass")
        answer = parse_datachannel_offer(parse_sdp(await offerer.renegotiate(reoffer)), 0)
        assert offerer.dc is dc  # the same association
        assert answer.tls_id == before.tls_id and answer.setup == before.setup
        assert {d.stream_id for d in answer.dcmaps} == {d.stream_id for d in before.dcmaps}
    finally:
        await offerer.close()
        await answerer.close()
