"""DTLS straight over UDP, without ICE: the path IMS UEs use (TS 26.114 6.2.10, RFC 8261 §4).

The m-line's ``c=`` address and port are the peer's DTLS 5-tuple. The socket is bound when the
session is created, before the answer goes out, so a ClientHello that arrives before the answer
is processed is queued, not lost.

Which datagrams are the peer's:

- As the DTLS client (``a=setup:active``), the MF talks to the address from the SDP and accepts
  datagrams from that address only: a stray record from elsewhere (another call's ClientHello,
  a scan) never reaches the handshake.
- As the DTLS server (``a=setup:passive``, or an ``actpass`` offerer before the answer), it
  latches to the source of the first ClientHello, from the SDP address or not (the way IMS
  access gateways latch), so it works
  behind NATs whose address the SDP cannot know; from then on it sends to, and accepts only,
  that source. Other records before the first ClientHello are ignored. The peer is then
  authenticated by the DTLS fingerprint check.

How the peer's datagrams reach the DTLS layer: through :meth:`PlainUdpTransport._recv` (a
queue, a future and a task step per datagram), unless the DTLS layer installed a synchronous
receiver (:meth:`PlainUdpTransport.set_fast_receiver`, once its own record layer took over from
OpenSSL; issue 16). Then a datagram that arrives while the DTLS task waits in ``_recv`` with
nothing queued is offered to that receiver from ``datagram_received`` itself; the receiver
takes it (True) or leaves it untouched (False: it is queued for ``_recv`` as before, e.g. a
handshake record, an alert, SRTP, RFC 7983). While anything is queued or the DTLS task is busy
with one, every datagram queues behind it: order is kept. A ``_recv`` replaced on the instance
(the test UE's ``pause_media`` loses or holds datagrams that way) turns the synchronous path
off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from avatar_mf.media.errors import MediaParamsError, MediaResourceError
from avatar_mf.media.params import LocalIce, RemoteParams
from avatar_mf.media.sockets import SocketLedger

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 256
"""Datagrams kept while nobody reads (the DTLS handshake has not started); older ones drop."""


def is_dtls_record(data: bytes) -> bool:
    """RFC 7983 section 7 demultiplexing: DTLS content types are 20-63."""
    return bool(data) and 20 <= data[0] <= 63


def is_client_hello(data: bytes) -> bool:
    """A DTLS handshake record (content type 22) carrying a ClientHello (handshake type 1,
    the first byte after the 13-byte record header; RFC 6347 4.1 and 4.2.2)."""
    return len(data) > 13 and data[0] == 22 and data[13] == 1


@lru_cache(maxsize=1024)
def _ip(host: str) -> tuple[str, int]:
    """``host`` (an IP literal) in its canonical text form, and its IP version; cached: it
    runs for every datagram received, and the peers' addresses repeat."""
    ip = ipaddress.ip_address(host)
    return str(ip), ip.version


def bound_socket(host: str) -> socket.socket:
    """A non-blocking UDP socket bound to ``host`` (an IP literal) on a free port.

    Made here rather than by ``create_datagram_endpoint(local_addr=...)``, which resolves the
    literal through getaddrinfo (uvloop: on libuv's thread pool): 39-45 -> 13 us of CPU per
    socket, one socket per call (issue 16). Raises OSError (ValueError for a host name)."""
    family = socket.AF_INET6 if _ip(host)[1] == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_endpoint(
    host: str,
    protocol: Callable[[], asyncio.DatagramProtocol],
    *,
    ledger: SocketLedger | None = None,
    what: str = "UDP",
) -> asyncio.DatagramTransport:
    """A datagram endpoint on a free port of ``host``: an IP literal's socket made by
    :func:`bound_socket`, a host name resolved by the loop; tracked by ``ledger``. Raises
    :class:`MediaResourceError` (``cannot bind <what> on <host>``) when it cannot bind."""
    loop = asyncio.get_running_loop()
    try:
        sock: socket.socket | None = bound_socket(host)
    except ValueError:  # not an IP literal: let the loop resolve it
        sock = None
    except OSError as exc:
        raise MediaResourceError(f"cannot bind {what} on {host}: {exc}") from exc
    try:
        if sock is not None:
            transport, _ = await loop.create_datagram_endpoint(protocol, sock=sock)
        else:
            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(host, 0))
    except BaseException as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, OSError):
            raise MediaResourceError(f"cannot bind {what} on {host}: {exc}") from exc
        raise
    if ledger is not None:
        ledger.track(transport)
    return transport


def _canonical(address: tuple[Any, ...]) -> tuple[str, int]:
    return _ip(address[0])[0], int(address[1])


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: PlainUdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._owner._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable while the peer is not up yet) are normal for UDP.
        logger.debug("%s: %s", self._owner, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._connection_lost()


class PlainUdpTransport:
    """A datagram path over one UDP socket, shaped like what ``RTCDtlsTransport`` needs from
    ``RTCIceTransport`` (``role``, ``_recv``, ``_send``). Implements
    :class:`~avatar_mf.media.packet_path.PacketPath`."""

    def __init__(self, *, role: str = "controlled", max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        """Use :meth:`bind`."""
        self._role = role
        self._queue: deque[bytes] = deque(maxlen=max_queue)
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._local: tuple[str, int] = ("", 0)
        self._declared: tuple[str, int] | None = None
        self._latched: tuple[str, int] | None = None
        # The latched peer's address as the event loop spells it: compared first, so that a
        # datagram from the peer costs no canonicalisation.
        self._latched_raw: tuple[Any, ...] | None = None
        self._dtls_server: bool | None = None  # unknown until the SDP exchange ends
        self._closed = False
        self._on_first: Callable[[], None] | None = None
        # The DTLS layer's synchronous receiver (see the module docstring), else None.
        self._fast: Callable[[bytes], bool] | None = None

    @classmethod
    async def bind(
        cls,
        host: str,
        *,
        ledger: SocketLedger | None = None,
        role: str = "controlled",
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> PlainUdpTransport:
        """Bind a UDP socket on ``host`` (any free port)."""
        self = cls(role=role, max_queue=max_queue)
        transport = await open_endpoint(host, lambda: _Protocol(self), ledger=ledger)
        self._transport = transport
        self._local = _canonical(transport.get_extra_info("sockname"))
        return self

    def __repr__(self) -> str:
        return f"PlainUdpTransport({self._local[0]}:{self._local[1]} -> {self.remote_address})"

    # PacketPath

    @property
    def role(self) -> str:
        return self._role

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    @property
    def local_ice(self) -> LocalIce | None:
        return None

    @property
    def open_sockets(self) -> int:
        return 0 if self._transport is None or self._transport.is_closing() else 1

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """Where datagrams go: the latched source, else the address from the SDP."""
        return self._latched or self._declared

    async def set_remote(self, remote: RemoteParams) -> None:
        if remote.port == 0:
            self._declared = None
            return
        if _ip(remote.address)[1] != _ip(self._local[0])[1]:
            raise MediaParamsError(
                f"remote {remote.address} and local {self._local[0]} are not the same IP version"
            )
        self._declared = _canonical((remote.address, remote.port))

    def set_dtls_role(self, role: str) -> None:
        self._dtls_server = role == "server"

    def on_first_datagram(self, callback: Callable[[], None]) -> None:
        if self._queue:
            callback()
        else:
            self._on_first = callback

    def set_fast_receiver(self, receiver: Callable[[bytes], bool] | None) -> None:
        """Offer the peer's datagrams to ``receiver`` synchronously when nothing is queued and
        the DTLS task waits in :meth:`_recv` (module docstring); None: queue every datagram."""
        self._fast = receiver

    async def connect(self) -> None:
        if self._closed:
            raise ConnectionError("transport closed")

    async def _recv(self) -> bytes:
        while not self._queue:
            if self._closed:
                raise ConnectionError("transport closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def _send(self, data: bytes) -> None:
        if self._closed or self._transport is None:
            raise ConnectionError("transport closed")
        destination = self.remote_address
        if destination is None:
            # Nothing to send to yet (passive and nothing received): a lost datagram, as UDP.
            logger.debug("%s: no peer address yet, dropping %d bytes", self, len(data))
            return
        self._transport.sendto(data, destination)

    def send_now(self, data: bytes) -> None:
        """:meth:`_send` without a coroutine (the fast paths above call it)."""
        transport = self._transport
        if self._closed or transport is None:
            raise ConnectionError("transport closed")
        destination = self._latched or self._declared
        if destination is not None:
            transport.sendto(data, destination)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_first = None
        self._fast = None
        self._queue.clear()
        self._wake()
        if self._transport is not None:
            self._transport.close()
            # The socket is closed on the next loop iteration (connection_lost).
            await asyncio.sleep(0)

    # socket callbacks

    def _datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._closed:
            return
        if addr != self._latched_raw:  # else the latched peer, as the loop spells it
            source = _canonical(addr)
            if self._latched is None:
                if not is_dtls_record(data):
                    return
                if source != self._declared:
                    # Only a DTLS server (or an offerer that does not know its role yet) may
                    # follow a peer to an address the SDP did not give, and only on a
                    # ClientHello.
                    if self._dtls_server is False or not is_client_hello(data):
                        logger.debug("%s: ignored a record from %s:%d", self, *source)
                        return
                    logger.debug("%s: latched to %s:%d", self, *source)
                self._latched = source
            elif source != self._latched:
                return
            self._latched_raw = addr
        fast = self._fast
        if (
            fast is not None
            and self._waiter is not None
            and not self._queue
            and "_recv" not in self.__dict__
        ):
            # The DTLS task waits for this datagram and nothing is ahead of it (and _recv is
            # this class's: a test that replaces it to lose or hold datagrams sees them all).
            try:
                if fast(data):
                    return
            except Exception:  # a bug above: never out of datagram_received, one datagram lost
                logger.exception("%s: the fast receiver failed", self)
                return
        self._queue.append(data)
        self._wake()
        if self._on_first is not None:
            on_first, self._on_first = self._on_first, None
            on_first()

    def _connection_lost(self) -> None:
        self._closed = True
        self._fast = None
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
