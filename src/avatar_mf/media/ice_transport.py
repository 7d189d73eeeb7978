"""ICE with host candidates on the configured media address only (RFC 8445, RFC 8839).

aioice gathers on every interface except loopback and aiortc adds a public STUN server by
default. An MF advertises one media address and needs no STUN/TURN, so this path gathers exactly
one host candidate, on ``media_host`` (which may be 127.0.0.1 or ::1), and no server candidates.
It is full ICE, no trickle: the remote candidates come with the SDP and end there.

The local ufrag and password (RFC 8445 5.3: at least 24 and 128 random bits; RFC 8839 5.4:
ice-chars, 4 and 22 characters at least) are 4 and 24 characters of one base64 encoding of 21
random bytes (168 bits), not aioice's one ``secrets.choice`` per character (~20 us per
connection; issue 16).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable

from aioice import Candidate, Connection

from avatar_mf.media.errors import MediaParamsError, MediaResourceError
from avatar_mf.media.params import LocalIce, RemoteParams
from avatar_mf.media.sockets import SocketLedger

logger = logging.getLogger(__name__)


def ice_credentials(random: bytes) -> tuple[str, str]:
    """A local ICE ufrag (4 characters) and password (24) from 21 ``random`` bytes: their
    base64 encoding, whose alphabet is RFC 8839's ice-char (ALPHA, DIGIT, "+", "/")."""
    if len(random) != 21:
        raise ValueError("ICE credentials take 21 random bytes")
    text = base64.b64encode(random).decode("ascii")
    return text[:4], text[4:]


class _HostOnlyConnection(Connection):
    """An aioice Connection gathering one host candidate per component on a given address.

    Pinned to aioice 0.13: replaces ``gather_candidates`` (which calls ``get_host_addresses``,
    skipping loopback) and sets the same private fields it sets.
    """

    def __init__(self, host: str, *, ice_controlling: bool) -> None:
        ufrag, password = ice_credentials(secrets.token_bytes(21))
        super().__init__(
            ice_controlling=ice_controlling, local_username=ufrag, local_password=password
        )
        self._media_host = host

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        for component in sorted(self._components):
            self._local_candidates += await self.get_component_candidates(
                component=component, addresses=[self._media_host]
            )
        self._local_candidates_end = True


def parse_candidate(value: str) -> Candidate:
    """An aioice candidate from a raw ``a=candidate`` value (``candidate:`` prefix allowed)."""
    text = value.strip()
    if text.lower().startswith("candidate:"):
        text = text[len("candidate:") :]
    return Candidate.from_sdp(text)


class IcePacketTransport:
    """A datagram path through an ICE connection. Implements
    :class:`~avatar_mf.media.packet_path.PacketPath`."""

    def __init__(self, connection: _HostOnlyConnection) -> None:
        """Use :meth:`gather`."""
        self._connection = connection
        self._remote_set = False
        self._closed = False
        candidate = connection.local_candidates[0]
        self._local = (candidate.host, candidate.port)

    @classmethod
    async def gather(
        cls, host: str, *, controlling: bool, ledger: SocketLedger | None = None
    ) -> IcePacketTransport:
        """Bind the host candidate's socket on ``host``."""
        connection = _HostOnlyConnection(host, ice_controlling=controlling)
        try:
            await connection.gather_candidates()
        except BaseException:  # cancelled while binding: no socket may survive
            await connection.close()
            raise
        if not connection.local_candidates:
            await connection.close()
            raise MediaResourceError(f"cannot bind an ICE host candidate on {host}")
        if ledger is not None:
            for protocol in connection._protocols:
                ledger.track(protocol.transport)
        return cls(connection)

    def __repr__(self) -> str:
        return f"IcePacketTransport({self._local[0]}:{self._local[1]}, {self.role})"

    # PacketPath

    @property
    def role(self) -> str:
        return "controlling" if self._connection.ice_controlling else "controlled"

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    @property
    def local_ice(self) -> LocalIce:
        return LocalIce(
            ufrag=self._connection.local_username,
            pwd=self._connection.local_password,
            candidates=tuple(c.to_sdp() for c in self._connection.local_candidates),
        )

    @property
    def open_sockets(self) -> int:
        return sum(1 for p in self._connection._protocols if not p.transport.is_closing())

    def set_dtls_role(self, role: str) -> None:
        """ICE has verified the peer's address already: nothing to do."""

    async def set_remote(self, remote: RemoteParams) -> None:
        if remote.ice is None:
            raise MediaParamsError("ICE was offered but the peer's parameters carry no ICE")
        if self._remote_set:
            raise MediaParamsError("ICE remote parameters already set")
        self._remote_set = True
        connection = self._connection
        connection.remote_username = remote.ice.ufrag
        connection.remote_password = remote.ice.pwd
        connection.remote_is_lite = remote.ice.ice_lite
        if remote.ice.ice_lite and not connection.ice_controlling:
            # RFC 8445 section 6.1.1: facing a lite agent, the full agent controls.
            connection.ice_controlling = True
        candidates: list[Candidate] = []
        for value in remote.ice.candidates:
            try:
                candidates.append(parse_candidate(value))
            except ValueError as exc:
                logger.info("%s: ignoring candidate %r: %s", self, value, exc)
        if not candidates and remote.port:
            # No a=candidate lines: the m-line's address is the only host candidate.
            candidates.append(
                Candidate(
                    foundation="default",
                    component=1,
                    transport="udp",
                    priority=1,
                    host=remote.address,
                    port=remote.port,
                    type="host",
                )
            )
        for candidate in candidates:
            await connection.add_remote_candidate(candidate)
        await connection.add_remote_candidate(None)

    def on_first_datagram(self, callback: Callable[[], None]) -> None:
        """With ICE the session starts at once whatever its DTLS role: ICE's own
        connectivity checks must run both ways before any DTLS record can arrive."""
        callback()

    async def connect(self) -> None:
        if not self._remote_set:
            raise ConnectionError("ICE remote parameters missing")
        await self._connection.connect()

    async def _recv(self) -> bytes:
        return await self._connection.recv()

    async def _send(self, data: bytes) -> None:
        await self._connection.send(data)

    def send_now(self, data: bytes) -> None:
        pair = self._connection._nominated.get(1)  # aioice's sendto, without its coroutines
        if pair is None or self._closed:
            raise ConnectionError("Cannot send data, not connected")
        pair.protocol.transport.sendto(data, pair.remote_addr)

    def set_fast_receiver(self, receiver: Callable[[bytes], bool] | None) -> None:
        """Every datagram goes through aioice's queue."""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        connection = self._connection
        await connection.close()
        # aioice 0.13 keeps the candidate pairs after close(): each pair's protocol points back
        # at the connection, and a pair whose check was cancelled holds its task, whose
        # CancelledError holds the check's frame, which holds the pair: reference cycles for
        # the garbage collector, one set per call. Nothing reads the pairs of a closed
        # connection (close() stopped and awaited their checks).
        for pair in connection._check_list:
            pair.task = None
        connection._check_list.clear()
