"""What sits under the DTLS transport: a datagram path to one peer (ICE or plain UDP).

aiortc 1.16's ``RTCDtlsTransport`` is written against ``RTCIceTransport`` but only touches
``transport._recv()``, ``transport._send(data)`` and ``transport.role`` (the latter only when the
DTLS role is ``"auto"``, which the media layer never leaves it at, and for stats). Both paths below
provide exactly that, plus the lifecycle the session drives, and a synchronous way in and out
for the DTLS layer's fast record path (``send_now``, ``set_fast_receiver``; issue 16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from avatar_mf.media.params import LocalIce, RemoteParams


class PacketPath(Protocol):
    @property
    def role(self) -> str:
        """ICE role, ``"controlling"`` or ``"controlled"`` (read by RTCDtlsTransport stats)."""
        ...

    @property
    def local_address(self) -> tuple[str, int]:
        """Address and port to advertise in the m-line."""
        ...

    @property
    def local_ice(self) -> LocalIce | None:
        """ICE attributes to advertise, None for plain UDP."""
        ...

    @property
    def open_sockets(self) -> int:
        """How many sockets this path holds open."""
        ...

    async def set_remote(self, remote: RemoteParams) -> None:
        """Learn the peer's transport parameters (before :meth:`connect`)."""
        ...

    def set_dtls_role(self, role: str) -> None:
        """The local DTLS role ("client" or "server"), known before :meth:`connect`: a path
        without ICE uses it to decide which datagrams may pick the peer's address."""
        ...

    def on_first_datagram(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the first datagram for the DTLS layer arrives (at once
        if one is already waiting). A session that is the DTLS server on this path starts
        its association then, not before (nothing is built for a peer that never speaks)."""
        ...

    async def connect(self) -> None:
        """Establish the path (ICE checks); raises ConnectionError on failure."""
        ...

    async def _recv(self) -> bytes:
        """The next datagram from the peer; ConnectionError once closed."""
        ...

    async def _send(self, data: bytes) -> None:
        """Send one datagram to the peer; ConnectionError once closed."""
        ...

    def send_now(self, data: bytes) -> None:
        """:meth:`_send` without a coroutine, for the fast paths; ConnectionError once closed
        (or, with ICE, before a pair is nominated)."""
        ...

    def set_fast_receiver(self, receiver: Callable[[bytes], bool] | None) -> None:
        """Offer the peer's datagrams to ``receiver`` synchronously, from the socket's
        callback, while nothing is queued for :meth:`_recv` and a reader waits in it; the
        receiver returns False to have one queued as before. A path may keep queueing
        every datagram. None: queue every datagram."""
        ...

    async def close(self) -> None:
        """Release the sockets; idempotent. A pending :meth:`_recv` raises ConnectionError."""
        ...
