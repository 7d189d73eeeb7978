"""SRTP on the data channel's DTLS transport: audio and video BUNDLEd with the data channel.

A browser-style UE sends its audio on the same ICE transport as its data channel (RFC 8843
BUNDLE, one 5-tuple). What arrives there is told apart by its first byte (RFC 7983 section 7:
0-3 STUN, handled by ICE; 20-63 DTLS; 128-191 RTP/RTCP); aiortc 1.16's ``RTCDtlsTransport``
already does that and, once the handshake negotiated a DTLS-SRTP profile (``use_srtp``, RFC
5764 section 4.1), derives the SRTP keys from it (section 4.2) and unprotects SRTP and SRTCP
(RFC 3711) with them. Two of its methods route the decrypted packets to aiortc's own RTP
receivers; :class:`BundledDtlsTransport` overrides exactly those two (``_handle_rtp_data``,
``_handle_rtcp_data``) to hand the packets, still as bytes, to its :class:`SrtpRouter`, which
gives each to the :class:`SrtpPath` of its m-line, so the MF's sans-IO streams
(:class:`~avatar_mf.media.audio_stream.AudioStream`,
:class:`~avatar_mf.media.video_stream.VideoStream`) read them as they read plain RTP from a
socket (RFC 5761 rtcp-mux: RTP and RTCP on the one path).

Routing (RFC 8843 section 9.2, by payload type, as JSEP's RTP demultiplexing falls back to
when there is no MID header extension, RFC 8829 5.9): an RTP packet goes to the path whose
m-line answered its payload type (a path with no payload types given takes every payload
type no other path claims: a single audio path, as before video). The SSRCs are learnt on the
way: a remote SSRC from the RTP a path receives, a local one from the RTP it sends. An RTCP
compound packet goes to every path one of its SSRCs belongs to: the sender SSRC of SR, SDES
and BYE packets (the remote's), the media SSRC of RTPFB/PSFB feedback (RFC 4585 6.1: NACK,
PLI, FIR; the MF's own) and the SSRCs of SR/RR report blocks (the MF's own). RTP of no path,
RTCP of no known SSRC (and no path taking every payload type): dropped, counted as
``bundle_unknown_pt`` / ``bundle_unknown_ssrc``.

Sending: :meth:`SrtpPath.send_rtp` and :meth:`SrtpPath.send_rtcp` have the signature of the
IMS socket pair's (:class:`~avatar_mf.media.rtp_socket.RtpSocketPair`), protect the packet
with the transport's SRTP session at once and hand it to the ICE path.

Counted (:attr:`SrtpRouter.drops`, the node's counter once, and every attached path's
:attr:`SrtpPath.drops`): ``srtp_auth``, SRTP or SRTCP the keys do not authenticate (wrong
keys, garbage, replays: RFC 3711 section 3.3 step 5); the two routing drops above (router
and node only); ``srtp_not_ready`` (the path only, not a node drop), packets to send before
the handshake gave keys.
A packet that fails is dropped; the association and the call go on.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

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


#: RTCP packet types (RFC 3550 section 12.1, RFC 4585 section 6.1).
_SR, _RR, _SDES, _BYE, _RTPFB, _PSFB = 200, 201, 202, 203, 205, 206


def _ssrc(data: bytes, at: int) -> int | None:
    return int.from_bytes(data[at : at + 4], "big") if len(data) >= at + 4 else None


def rtcp_ssrcs(data: bytes) -> tuple[set[int], set[int]]:
    """The (sender-side, receiver-side) SSRCs an RTCP compound packet names: sender SSRCs of
    SR, SDES (first chunk) and BYE; media SSRCs of RTPFB/PSFB and report-block SSRCs of SR/RR.
    Stops at the first malformed packet."""
    senders: set[int] = set()
    media: set[int] = set()
    at = 0
    while at + 8 <= len(data):
        first, kind = data[at], data[at + 1]
        length = (int.from_bytes(data[at + 2 : at + 4], "big") + 1) * 4
        if first >> 6 != 2 or at + length > len(data):
            break
        packet = data[at : at + length]
        sender = _ssrc(packet, 4)
        if kind in (_SR, _SDES, _BYE) and sender is not None:
            senders.add(sender)
        if kind in (_RTPFB, _PSFB):
            target = _ssrc(packet, 8)
            if target is not None:
                media.add(target)
            if kind == _PSFB and first & 0x1F == 4:  # FIR: the FCI names the media SSRC
                fci = _ssrc(packet, 12)
                if fci is not None:
                    media.add(fci)
        if kind in (_SR, _RR):
            blocks = 28 if kind == _SR else 8
            for n in range(first & 0x1F):
                block = _ssrc(packet, blocks + 24 * n)
                if block is not None:
                    media.add(block)
        at += length
    return senders, media


class SrtpRouter:
    """The decrypted RTP and RTCP of one BUNDLE transport routed to the :class:`SrtpPath` of
    each m-line (see the module docstring)."""

    def __init__(self) -> None:
        self.paths: list[SrtpPath] = []
        self.drops: Counter[str] = Counter()
        self._remote: dict[int, SrtpPath] = {}
        self._local: dict[int, SrtpPath] = {}
        #: Payload type -> path (the first path listing it), and the path taking the rest.
        self._by_pt: dict[int, SrtpPath] = {}
        self._rest: SrtpPath | None = None

    def add(self, path: SrtpPath) -> None:
        if path not in self.paths:
            self.paths.append(path)
            self._index()

    def remove(self, path: SrtpPath) -> None:
        if path in self.paths:
            self.paths.remove(path)
            self._index()
        for table in (self._remote, self._local):
            for ssrc in [k for k, v in table.items() if v is path]:
                del table[ssrc]

    def _index(self) -> None:
        self._by_pt = {}
        for path in reversed(self.paths):
            self._by_pt.update(dict.fromkeys(path.payload_types, path))
        self._rest = next((p for p in self.paths if not p.payload_types), None)

    def keys_ready(self) -> None:
        for path in list(self.paths):
            path.keys_ready()

    def drop(self, reason: str, *, paths: bool = False) -> None:
        """Count a drop of the transport (``paths``: on every path's own counter too)."""
        self.drops[reason] += 1
        node = next((p.node_drops for p in self.paths if p.node_drops is not None), None)
        if node is not None:
            node[reason] += 1
        if paths:
            for path in self.paths:
                path.drops[reason] += 1

    def sent(self, path: SrtpPath, data: bytes) -> None:
        """``path`` sends the RTP ``data``: its SSRC is the path's (feedback about it)."""
        if len(data) >= 12:
            self._local.setdefault(int.from_bytes(data[8:12], "big"), path)

    def route_rtp(self, data: bytes) -> SrtpPath | None:
        if len(data) < 12:
            return None
        path = self._by_pt.get(data[1] & 0x7F, self._rest)
        if path is not None:
            self._remote.setdefault(int.from_bytes(data[8:12], "big"), path)
        return path

    def route_rtcp(self, data: bytes) -> list[SrtpPath]:
        senders, media = rtcp_ssrcs(data)
        out: list[SrtpPath] = []
        for ssrc, table in [
            *((s, self._remote) for s in senders),
            *((m, self._local) for m in media),
        ]:
            path = table.get(ssrc)
            if path is not None and path not in out:
                out.append(path)
        if not out:  # no SSRC known: the path taking every payload type, or the only one
            out = [p for p in self.paths if not p.payload_types]
            if not out and len(self.paths) == 1:
                out = list(self.paths)
        return out

    def received(self, data: bytes) -> None:
        path = self.route_rtp(data)
        if path is None:
            self.drop("bundle_unknown_pt")
        else:
            path.received(data)

    def received_rtcp(self, data: bytes) -> None:
        paths = self.route_rtcp(data)
        if not paths:
            self.drop("bundle_unknown_ssrc")
        for path in paths:
            path.received_rtcp(data)


class BundledDtlsTransport(ImsDtlsTransport):
    """``ImsDtlsTransport`` handing decrypted RTP/RTCP to its :class:`SrtpRouter` (no path
    attached: dropped, as aiortc drops packets no receiver takes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.srtp = SrtpRouter()

    def _srtp_wanted(self) -> bool:
        # Keys at the end of the handshake only for a path already attached; else when one
        # attaches (has_srtp_keys) or the first SRTP packet arrives (dtls_transport, item 4).
        return bool(self.srtp.paths)

    def _srtp_keys_derived(self) -> None:
        if self._rx_srtp is not None:
            self._rx_srtp = cast(
                pylibsrtp.Session, _CountingSession(self._rx_srtp, self._srtp_failed)
            )
            self.srtp.keys_ready()

    @property
    def has_srtp_keys(self) -> bool:
        return self._tx_srtp is not None

    def _srtp_failed(self) -> None:
        self.srtp.drop("srtp_auth", paths=True)

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.srtp.received(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.srtp.received_rtcp(data)

    def protect(self, data: bytes, *, rtcp: bool) -> bytes:
        """``data`` as SRTP (or SRTCP); raises pylibsrtp.Error."""
        session = self._tx_srtp
        return session.protect_rtcp(data) if rtcp else session.protect(data)


class SrtpPath:
    """The RTP and RTCP of one BUNDLEd m-line (see the module docstring). Built unattached
    (the stream exists before the association); :meth:`attach` puts it on a transport.
    ``payload_types``: those its m-line answered (empty: every one no other path claims)."""

    def __init__(
        self,
        node_drops: Counter[str] | None = None,
        *,
        payload_types: frozenset[int] = frozenset(),
    ) -> None:
        self.payload_types = payload_types
        self.on_rtp: Receiver | None = None
        self.on_rtcp: Receiver | None = None
        #: Called once SRTP keys exist (at once if they exist when attached).
        self.on_ready: Callable[[], None] | None = None
        self.drops: Counter[str] = Counter()
        self.packets_in = 0
        self.packets_out = 0
        self.node_drops = node_drops
        self._dtls: BundledDtlsTransport | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.port = 0

    @property
    def ready(self) -> bool:
        dtls = self._dtls
        return dtls is not None and dtls.has_srtp_keys and dtls.state == "connected"

    def attach(self, dtls: BundledDtlsTransport) -> None:
        if self._dtls is not None and self._dtls is not dtls:
            self._dtls.srtp.remove(self)
        self._dtls = dtls
        dtls.derive_srtp_keys()  # if the handshake negotiated them and nobody wanted them yet
        dtls.srtp.add(self)
        if dtls.has_srtp_keys:
            self.keys_ready()

    def keys_ready(self) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1
        if self.node_drops is not None:
            self.node_drops[reason] += 1

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
        if not rtcp:
            dtls.srtp.sent(self, data)
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
        if dtls is not None:
            dtls.srtp.remove(self)
        self.on_rtp = self.on_rtcp = self.on_ready = None
        for task in list(self._tasks):
            task.cancel()
