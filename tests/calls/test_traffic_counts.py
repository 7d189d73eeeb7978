"""Data channel traffic figures: counted per message as plain ints on the channel's flow,
summed per subprotocol (``/metrics``) and per call (``/sessions``, CDRs) when read; a closed
channel's and a closed call's counts are kept, and nothing of them stays summed live."""

from __future__ import annotations

from typing import Any

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.channels.base import ChannelContext, EchoService
from avatar_mf.config import AppConfig
from avatar_mf.media.events import ChannelClosed, ChannelOpened, MessageReceived
from avatar_mf.media.session import StreamSpec
from avatar_mf.protocol.names import SUBPROTOCOL_METADATA
from avatar_mf.ua.media_seam import CallInfo


class FakeAssociation:
    """The association's view the session uses: its streams and a send that records."""

    def __init__(self, streams: dict[int, StreamSpec]) -> None:
        self.streams = streams
        self.remote = None
        self.sent: list[tuple[int, str | bytes]] = []

    def send(self, stream_id: int, data: str | bytes) -> None:
        self.sent.append((stream_id, data))

    def buffered_amount(self, stream_id: int) -> int:
        return 0

    async def close(self) -> None:
        pass


class Quiet:
    def __init__(self, channel: ChannelContext) -> None:
        self.channel = channel

    def on_message(self, data: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        pass


def make(call_id: str, factory: CallSessionFactory) -> tuple[CallMediaSession, FakeAssociation]:
    info = CallInfo(
        call_id=call_id,
        request_uri="sip:r@127.0.0.1",
        from_uri="sip:ue@127.0.0.1",
        to_uri="sip:r@127.0.0.1",
        identity="sip:ue@127.0.0.1",
        contact="<sip:ue@127.0.0.1:5070>",
        source_host="127.0.0.1",
    )
    session = CallMediaSession(factory, info, lambda reason: None)
    dc = FakeAssociation(
        {
            1000: StreamSpec(1000, label="meta", subprotocol=SUBPROTOCOL_METADATA),
            1002: StreamSpec(1002, label="x", subprotocol="unknown-proto"),
        }
    )
    any_dc: Any = dc
    session.dc = any_dc
    return session, dc


async def test_traffic_is_summed_per_subprotocol_and_call_and_kept_after_close() -> None:
    media: Any = None  # no offer is answered here
    factory = CallSessionFactory(media, AppConfig(), {SUBPROTOCOL_METADATA: Quiet})
    a, dc = make("c1", factory)
    b, _ = make("c2", factory)
    for session in (a, b):
        session._on_event(ChannelOpened(1000))
        session._on_event(ChannelOpened(1002))
    a._on_event(MessageReceived(1000, "héllo"))  # 6 bytes in UTF-8
    a._on_event(MessageReceived(1000, b"1234"))
    a._on_event(MessageReceived(1002, b"12"))  # no service: "other", echoed
    a._on_event(MessageReceived(7, b"123"))  # no channel on 7: "other"
    a.send(1000, b"12345")
    b._on_event(MessageReceived(1000, b"1"))
    meta = SUBPROTOCOL_METADATA
    assert dc.sent == [(1002, b"12"), (1000, b"12345")]
    messages = {(meta, "rx"): 3, (meta, "tx"): 1, ("other", "rx"): 2, ("other", "tx"): 1}
    octets = {(meta, "rx"): 11, (meta, "tx"): 5, ("other", "rx"): 5, ("other", "tx"): 2}
    assert factory.traffic.messages == messages
    assert factory.traffic.bytes == octets
    assert (a.messages_in, a.bytes_in, a.messages_out, a.bytes_out) == (4, 15, 2, 7)
    assert (b.messages_in, b.bytes_in, b.messages_out, b.bytes_out) == (1, 1, 0, 0)

    a._on_event(ChannelClosed(1000))  # a's metadata channel closes: its counts stay
    assert (a.messages_in, a.bytes_in, a.messages_out, a.bytes_out) == (4, 15, 2, 7)
    await a.close()
    await b.close()
    assert factory.traffic.live == set()  # nothing of closed calls is summed live
    assert factory.traffic.messages == messages
    assert factory.traffic.bytes == octets
    assert factory.traffic.open_channels[meta] == 0
    assert (a.messages_in, a.bytes_in, a.messages_out, a.bytes_out) == (4, 15, 2, 7)


def test_echo_service_still_counts_both_ways() -> None:
    media: Any = None
    factory = CallSessionFactory(media, AppConfig(), {})
    session, dc = make("c3", factory)
    session._on_event(ChannelOpened(1002))
    session._open_service(1002)
    assert isinstance(session._services[1002], EchoService)
    session._on_event(MessageReceived(1002, b"ping"))
    assert dc.sent == [(1002, b"ping")]
    assert factory.traffic.messages == {("other", "rx"): 1, ("other", "tx"): 1}
