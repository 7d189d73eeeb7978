"""The far end of a SIP hop: where a message came from, or where it goes (RFC 3261 18).

A :class:`Peer` names a transport, an address and, for connection-oriented transports, the
connection a request arrived on: RFC 3261 18.2.2 sends a response over a reliable transport back
on that same connection.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Peer"]


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote SIP endpoint as seen by one transport.

    Attributes:
        transport: transport name, lower case by convention: ``"udp"``, ``"tcp"``, ``"tls"``.
        host: IP address or host name (IPv6 without brackets, as sockets report it).
        port: port number.
        connection_id: for stream transports, the id of the connection a request came in on,
            so its responses go back on it (RFC 3261 18.2.2); ``None`` for datagrams or when
            any connection to ``host:port`` will do.
    """

    transport: str
    host: str
    port: int
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        """False only for UDP, the one unreliable transport: the transaction layer retransmits
        over it (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1). TCP, TLS, SCTP, WS and WSS are reliable:
        no retransmissions, zero-length wait timers."""
        return self.transport.lower() != "udp"
