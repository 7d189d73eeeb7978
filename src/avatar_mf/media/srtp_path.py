"""SRTP on the data channel's DTLS transport: audio BUNDLEd with the data channel (WebRTC).

A browser-style UE sends its audio on the same ICE transport as its data channel (RFC 8843
BUNDLE, one 5-tuple). What arrives there is told apart by its first byte (RFC 7983 section 7:
0-3 STUN, handled by ICE; 20-63 DTLS; 128-191 RTP/RTCP); aiortc 1.16's ``RTCDtlsTransport``
already does that and, once the handshake negotiated a DTLS-SRTP profile (``use_srtp``, RFC
5764 section 4.1), derives the SRTP keys from it (section 4.2) and unprotects SRTP and SRTCP
(RFC 3711) with them. Two of its methods route the decrypted packets to aiortc's own RTP
receivers; :class:`BundledDtlsTransport` overrides exactly those two (``_handle_rtp_data``,
``_handle_rtcp_data``) to hand the packets, still as bytes, to the :class:`SrtpPath` attached
to it, so the MF's sans-IO :class:`~avatar_mf.media.audio_stream.AudioStream` reads them as
it reads plain RTP from a socket (RFC 5761 rtcp-mux: RTP and RTCP on the one path).

Sending: :meth:`SrtpPath.send_rtp` and :meth:`SrtpPath.send_rtcp` have the signature of the
IMS socket pair's (:class:`~avatar_mf.media.rtp_socket.RtpSocketPair`), protect the packet
with the transport's SRTP session at once and hand it to the ICE path.

Counted (:attr:`SrtpPath.drops`, and the node's counter when given): ``srtp_auth``, SRTP or
SRTCP the keys do not authenticate (wrong keys, garbage, replays: RFC 3711 section 3.3
step 5); ``srtp_not_ready``, packets to send before the handshake gave keys (not a node drop).
A packet that fails is dropped; the association and the call go on.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from typing import cast

import pylibsrtp

from avatar_mf.media.dtls_transport import ImsDtlsTransport

log = logging.getLogger(__name__)

Address = tuple[str, int]
Receiver = Callable[[bytes, Address], None]

#: The source address given to the stream for every packet of the BUNDLE transport (ICE has
#: already checked where they come from; the stream must never re-latch on a new one).
BUNDLE_ADDRESS: Address = ("bundle", 0)


class _CountingSession:
    """The transport's receiving SRTP session, counting what fails to unprotect. It holds
    the transport's method weakly: the transport holds it, and a cycle would leave every
    closed association to the garbage collector (tests/media/test_no_cycles.py)."""

    def __init__(self, session: pylibsrtp.Session, failed: Callable[[], None]) -> None:
        self._session = session
        self._failed = weakref.WeakMethod(failed)

    def _count(self) -> None:
        failed = self._failed()
        if failed is not None:
            failed()

    def unprotect(self, data: bytes) -> bytes:
        try:
            return self._session.unprotect(data)
        except pylibsrtp.Error:
            self._count()
            raise

    def unprotect_rtcp(self, data: bytes) -> bytes:
        try:
            return self._session.unprotect_rtcp(data)
        except pylibsrtp.Error:
            self._count()
            raise


class BundledDtlsTransport(ImsDtlsTransport):
    """``ImsDtlsTransport`` handing decrypted RTP/RTCP to an attached :class:`SrtpPath`
    (none attached: dropped, as aiortc drops packets no receiver takes)."""

    srtp: SrtpPath | None = None

    def _setup_srtp(self) -> None:
        super()._setup_srtp()
        if self._rx_srtp is not None:
            self._rx_srtp = cast(
                pylibsrtp.Session, _CountingSession(self._rx_srtp, self._srtp_failed)
            )
            if self.srtp is not None:
                self.srtp.keys_ready()

    @property
    def has_srtp_keys(self) -> bool:
        return self._tx_srtp is not None

    def _srtp_failed(self) -> None:
        if self.srtp is not None:
            self.srtp.drop("srtp_auth")

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        path = self.srtp
        if path is not None:
            path.received(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        path = self.srtp
        if path is not None:
            path.received_rtcp(data)

    def protect(self, data: bytes, *, rtcp: bool) -> bytes:
        """``data`` as SRTP (or SRTCP); raises pylibsrtp.Error."""
        session = self._tx_srtp
        return session.protect_rtcp(data) if rtcp else session.protect(data)


class SrtpPath:
    """The RTP and RTCP of one BUNDLEd m-line (see the module docstring). Built unattached
    (the stream exists before the association); :meth:`attach` puts it on a transport."""

    def __init__(self, node_drops: Counter[str] | None = None) -> None:
        self.on_rtp: Receiver | None = None
        self.on_rtcp: Receiver | None = None
        #: Called once SRTP keys exist (at once if they exist when attached).
        self.on_ready: Callable[[], None] | None = None
        self.drops: Counter[str] = Counter()
        self.packets_in = 0
        self.packets_out = 0
        self._node_drops = node_drops
        self._dtls: BundledDtlsTransport | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.port = 0

    @property
    def ready(self) -> bool:
        dtls = self._dtls
        return dtls is not None and dtls.has_srtp_keys and dtls.state == "connected"

    def attach(self, dtls: BundledDtlsTransport) -> None:
        if self._dtls is not None and self._dtls is not dtls and self._dtls.srtp is self:
            self._dtls.srtp = None
        self._dtls = dtls
        dtls.srtp = self
        if dtls.has_srtp_keys:
            self.keys_ready()

    def keys_ready(self) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1
        if self._node_drops is not None:
            self._node_drops[reason] += 1

    def received(self, data: bytes) -> None:
        self.packets_in += 1
        if self.on_rtp is not None:
            self.on_rtp(data, BUNDLE_ADDRESS)

    def received_rtcp(self, data: bytes) -> None:
        if self.on_rtcp is not None:
            self.on_rtcp(data, BUNDLE_ADDRESS)

    def send_rtp(self, data: bytes, addr: Address) -> None:
        self._send(data, rtcp=False)

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        self._send(data, rtcp=True)

    def _send(self, data: bytes, *, rtcp: bool) -> None:
        dtls = self._dtls
        if dtls is None or not self.ready:
            self.drops["srtp_not_ready"] += 1
            return
        try:
            protected = dtls.protect(data, rtcp=rtcp)
        except pylibsrtp.Error as exc:
            log.debug("SRTP protect failed: %s", exc)
            self.drop("srtp_protect")
            return
        task = asyncio.ensure_future(dtls.transport._send(protected))
        self._tasks.add(task)
        task.add_done_callback(self._sent)
        self.packets_out += 1

    def send_unprotected(self, data: bytes) -> None:
        """Put ``data`` on the transport as it is, not protected (a test UE's bad input)."""
        dtls = self._dtls
        if dtls is not None and dtls.state == "connected":
            task = asyncio.ensure_future(dtls.transport._send(data))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("SRTP send failed: %s", task.exception())

    def close(self) -> None:
        dtls, self._dtls = self._dtls, None
        if dtls is not None and dtls.srtp is self:
            dtls.srtp = None
        self.on_rtp = self.on_rtcp = self.on_ready = None
        for task in list(self._tasks):
            task.cancel()
