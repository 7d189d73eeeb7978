"""What a SIP transport hands up, and what it offers down."""

from __future__ import annotations

from typing import Protocol

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.message import Message
from avatar_mf.sip.peer import Peer


class TransportSink(Protocol):
    """The SIP endpoint above the transports."""

    def admit(self, peer: Peer, size: int) -> bool:
        """Cheap checks before parsing (trusted peers, rate limit). False drops the packet."""
        ...

    def message_received(self, message: Message, peer: Peer) -> None: ...

    def bad_message(self, error: SipParseError, peer: Peer) -> None:
        """A packet or stream segment that does not parse; answer it if ``error.partial``."""
        ...


class SipTransport(Protocol):
    name: str

    def send(self, data: bytes, host: str, port: int, connection_id: int | None) -> bool:
        """Queue ``data``; False when it cannot be sent (for example a closed connection)."""
        ...

    @property
    def local_port(self) -> int: ...

    def close(self) -> None: ...
