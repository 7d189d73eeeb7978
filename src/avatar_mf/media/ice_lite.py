"""The MF as an ICE-lite agent (RFC 8445 2.5, 6.1.1, 7.3, 8.2 and appendix A; RFC 7675).

A network media server is the textbook lite agent: one host candidate (the configured media
address), no candidate gathering beyond it, no connectivity checks of its own, no keepalives.
The full agent on the other side (a browser, the test UE) sends the checks; the lite agent
answers them and takes the pair the full agent nominates. It is always controlled (RFC 8445
6.1.1); the answer says so with a session-level ``a=ice-lite`` (RFC 8839 5.3).

:class:`IceLiteAgent` is the sans-IO core: datagrams and time in, responses and the selected
address out. :class:`IceLitePath` puts it on one UDP socket and gives the DTLS transport the
same :class:`~avatar_mf.media.packet_path.PacketPath` as the aioice path
(:mod:`.ice_transport`), which stays for offers the MF makes and for lite peers (two lite
agents: the MF keeps aioice's full agent, RFC 8445 6.1.1).

A Binding request (RFC 8489 with RFC 8445 7.3) is answered only when it is well formed and ends
with a correct FINGERPRINT; anything else is dropped silently (RFC 8489 7.3), as are Binding
indications (keepalives, RFC 8445 11), responses (the lite agent sends no requests) and
requests of other methods. In order:

* no MESSAGE-INTEGRITY, or no USERNAME: 400 (RFC 8489 9.1.3), without MESSAGE-INTEGRITY;
* USERNAME not ``<local ufrag>:<remote ufrag>`` (any remote part before the remote ufrag is
  known), or MESSAGE-INTEGRITY not made with the local password: 401, without it;
* an unknown comprehension-required attribute: 420 with UNKNOWN-ATTRIBUTES (RFC 8489 6.3.1);
* no (or a malformed) PRIORITY, neither or both of ICE-CONTROLLING and ICE-CONTROLLED: 400;
* ICE-CONTROLLED: 487 Role Conflict (RFC 8445 7.3.1.1: the lite agent cannot take the
  controlling role, so the full agent must);
* otherwise a success response with XOR-MAPPED-ADDRESS (the request's source). Responses to
  authenticated requests carry MESSAGE-INTEGRITY; every response carries FINGERPRINT.

The source of a valid request may send data (RFC 8445 12.1: a lite agent accepts data on a
pair it has answered a check for); at most ``max_peers`` such addresses are kept, the oldest
forgotten first. The selected address, where data goes, is the source of the latest valid
request carrying USE-CANDIDATE (RFC 8445 7.3.1.5, 8.2: the controlling agent nominates; a
later nomination, such as an aggressive-nomination peer's or a peer that moved, switches it).
Of the data, only RFC 7983's DTLS (first byte 20-63) and RTP/RTCP (128-191) are passed on.

Consent freshness (RFC 7675): the full agent sends the consent checks, the lite agent answers.
The path fails when no valid request has come from the selected address for
``consent_timeout`` seconds (30 s, RFC 7675 5.1's consent lifetime): the DTLS transport then
reads ConnectionError, as from a failed aioice connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.media import stun
from avatar_mf.media.errors import MediaParamsError
from avatar_mf.media.ice_transport import ice_credentials
from avatar_mf.media.params import LocalIce, RemoteIce, RemoteParams
from avatar_mf.media.sockets import SocketLedger
from avatar_mf.media.udp_dtls_transport import open_endpoint

logger = logging.getLogger(__name__)

CONSENT_TIMEOUT = 30.0
"""Seconds without a valid request from the selected address before the path fails."""

DEFAULT_MAX_PEERS = 8
"""Source addresses of valid requests kept (allowed to send data)."""

DEFAULT_MAX_QUEUE = 256
"""Datagrams kept while nobody reads; older ones drop."""

HOST_PRIORITY = (126 << 24) | (65535 << 8) | (256 - 1)
"""RFC 8445 5.1.2.1: a host candidate (type preference 126), the only local candidate (local
preference 65535), component 1."""

Address = tuple[Any, ...]
"""A socket address as the event loop gives it: (host, port) or (host, port, flow, scope)."""

_KNOWN_REQUIRED = frozenset(
    {
        stun.USERNAME,
        stun.MESSAGE_INTEGRITY,
        stun.PRIORITY,
        stun.USE_CANDIDATE,
        0x001C,  # MESSAGE-INTEGRITY-SHA256 (RFC 8489 14.6): understood, not used
    }
)


@dataclass(frozen=True, slots=True)
class StunOutcome:
    """What the agent made of one STUN datagram."""

    reply: bytes | None
    """The response to send back to the datagram's source; None: nothing (dropped)."""
    status: int
    """200 (answered with success), an error code (400, 401, 420, 487), or 0 (dropped)."""
    nominated: bool = False
    """The request nominated its source: it is the selected address now."""


_DROPPED = StunOutcome(None, 0)


class IceLiteAgent:
    """The sans-IO ICE-lite agent of one data channel m-line (one component)."""

    def __init__(self, ufrag: str, password: str, *, max_peers: int = DEFAULT_MAX_PEERS) -> None:
        self.local_ufrag = ufrag
        self.local_password = password
        self._key = password.encode("ascii")
        self._ufrag = ufrag.encode("ascii")
        self._remote_ufrag: bytes | None = None
        self._max_peers = max_peers
        self._peers: dict[Address, None] = {}
        self.selected: Address | None = None
        """Where data goes: the source of the latest valid nomination."""
        self.last_consent = 0.0
        """When the last valid request from the selected address came."""

    def set_remote_ufrag(self, ufrag: str) -> None:
        """The full agent's ``a=ice-ufrag``: the second part of a valid USERNAME."""
        self._remote_ufrag = ufrag.encode("utf-8")  # USERNAME is UTF-8 (RFC 8489 14.3)

    def restart(self, ufrag: str, password: str, remote_ufrag: str) -> None:
        """An ICE restart (RFC 8445 section 9): from now on only requests made with the new
        local credentials and the full agent's new ufrag are valid; those of the previous
        generation get 401. The addresses that may send data and the selected address stay
        (the previous pair carries data until the full agent nominates one of the new
        generation), and so does :attr:`last_consent` (consent freshness runs on)."""
        self.local_ufrag = ufrag
        self.local_password = password
        self._key = password.encode("ascii")
        self._ufrag = ufrag.encode("ascii")
        self.set_remote_ufrag(remote_ufrag)

    def accepts_data(self, source: Address) -> bool:
        """Whether ``source`` has sent a valid request (so may send data)."""
        return source == self.selected or source in self._peers

    def receive(self, data: bytes, source: Address, now: float) -> StunOutcome:
        """Handle one datagram whose first byte says STUN (RFC 7983)."""
        message = stun.parse(data)
        if (
            message is None
            or message.message_type != stun.BINDING_REQUEST
            or not message.fingerprinted
        ):
            return _DROPPED
        txid = message.transaction_id
        username = message.get(stun.USERNAME)
        if message.integrity_at is None or username is None:
            return self._error(txid, 400, "Bad Request", key=None)
        local, colon, remote = username.partition(b":")
        if (
            not colon
            or local != self._ufrag
            or (self._remote_ufrag is not None and remote != self._remote_ufrag)
            or not stun.check_integrity(data, message, self._key)
        ):
            return self._error(txid, 401, "Unauthenticated", key=None)
        unknown = tuple(
            kind for kind, _ in message.attributes if kind < 0x8000 and kind not in _KNOWN_REQUIRED
        )
        if unknown:
            return StunOutcome(
                stun.serialize(
                    stun.BINDING_ERROR,
                    txid,
                    (
                        (stun.ERROR_CODE, stun.error_code(420, "Unknown Attribute")),
                        (stun.UNKNOWN_ATTRIBUTES, stun.unknown_attributes(unknown[:8])),
                    ),
                    key=self._key,
                ),
                420,
            )
        priority = message.get(stun.PRIORITY)
        controlling = message.get(stun.ICE_CONTROLLING)
        controlled = message.get(stun.ICE_CONTROLLED)
        use_candidate = message.get(stun.USE_CANDIDATE)
        if (
            priority is None
            or len(priority) != 4
            or (controlling is None) == (controlled is None)
            or len(controlling or controlled or b"") != 8
            or (use_candidate is not None and use_candidate)
        ):
            return self._error(txid, 400, "Bad Request", key=self._key)
        if controlled is not None:
            return self._error(txid, 487, "Role Conflict", key=self._key)
        self._remember(source)
        nominated = use_candidate is not None
        if nominated:
            self.selected = source
        if source == self.selected:
            self.last_consent = now
        reply = stun.serialize(
            stun.BINDING_SUCCESS,
            txid,
            ((stun.XOR_MAPPED_ADDRESS, stun.xor_address(source, txid)),),
            key=self._key,
        )
        return StunOutcome(reply, 200, nominated)

    def _remember(self, source: Address) -> None:
        peers = self._peers
        if source in peers:
            return
        if len(peers) >= self._max_peers:
            del peers[next(iter(peers))]
        peers[source] = None

    @staticmethod
    def _error(txid: bytes, code: int, reason: str, *, key: bytes | None) -> StunOutcome:
        reply = stun.serialize(
            stun.BINDING_ERROR, txid, ((stun.ERROR_CODE, stun.error_code(code, reason)),), key=key
        )
        return StunOutcome(reply, code)


def restarts_ice(before: RemoteIce | None, now: RemoteIce | None) -> bool:
    """Whether a re-offer restarts ICE: both carry ICE and its ``a=ice-ufrag`` or
    ``a=ice-pwd`` changed (RFC 8839 section 4.4.1.1.1)."""
    return (
        before is not None
        and now is not None
        and (before.ufrag != now.ufrag or before.pwd != now.pwd)
    )


def _full_agent_ufrag(remote: RemoteParams) -> str:
    """The peer's ``a=ice-ufrag``, once its parameters are a full agent's (the MF is lite)."""
    if remote.ice is None:
        raise MediaParamsError("ICE was offered but the peer's parameters carry no ICE")
    if remote.ice.ice_lite:
        raise MediaParamsError("two ICE-lite agents: the MF's full agent must answer")
    return remote.ice.ufrag


def is_media(data: bytes) -> bool:
    """RFC 7983 section 7: DTLS (first byte 20-63) or RTP/RTCP (128-191)."""
    first = data[0] if data else 0
    return 20 <= first <= 63 or 128 <= first <= 191


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: IceLitePath) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._owner._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s: %s", self._owner, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._connection_lost()


class IceLitePath:
    """A datagram path through the ICE-lite agent on one UDP socket. Implements
    :class:`~avatar_mf.media.packet_path.PacketPath`."""

    def __init__(
        self,
        agent: IceLiteAgent,
        *,
        clock: Clock,
        consent_timeout: float = CONSENT_TIMEOUT,
        max_queue: int = DEFAULT_MAX_QUEUE,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        """Use :meth:`bind`. ``random`` makes the credentials of an ICE restart."""
        self._agent = agent
        self._random = random
        self._clock = clock
        self._consent_timeout = consent_timeout
        self._queue: deque[bytes] = deque(maxlen=max_queue)
        self._waiter: asyncio.Future[None] | None = None
        self._fast: Callable[[bytes], bool] | None = None
        self._selected: asyncio.Future[None] | None = None
        self._consent_timer: TimerHandle | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._local: tuple[str, int] = ("", 0)
        self._remote_set = False
        self._closed = False
        self._failure = "transport closed"

    @classmethod
    async def bind(
        cls,
        host: str,
        *,
        clock: Clock,
        ledger: SocketLedger | None = None,
        consent_timeout: float = CONSENT_TIMEOUT,
        random: Callable[[int], bytes] = secrets.token_bytes,
    ) -> IceLitePath:
        """Bind the host candidate's socket on ``host``, with fresh credentials from
        ``random``."""
        ufrag, password = ice_credentials(random(21))
        self = cls(
            IceLiteAgent(ufrag, password),
            clock=clock,
            consent_timeout=consent_timeout,
            random=random,
        )
        transport = await open_endpoint(
            host, lambda: _Protocol(self), ledger=ledger, what="an ICE host candidate"
        )
        self._transport = transport
        address = transport.get_extra_info("sockname")
        self._local = (address[0], int(address[1]))
        return self

    def __repr__(self) -> str:
        return f"IceLitePath({self._local[0]}:{self._local[1]} -> {self._agent.selected})"

    @property
    def agent(self) -> IceLiteAgent:
        return self._agent

    # PacketPath

    @property
    def role(self) -> str:
        return "controlled"

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    @property
    def local_ice(self) -> LocalIce:
        host, port = self._local
        return LocalIce(
            ufrag=self._agent.local_ufrag,
            pwd=self._agent.local_password,
            candidates=(f"1 1 udp {HOST_PRIORITY} {host} {port} typ host",),
            ice_lite=True,
        )

    @property
    def open_sockets(self) -> int:
        return 0 if self._transport is None or self._transport.is_closing() else 1

    def set_dtls_role(self, role: str) -> None:
        """The full agent's checks authenticate the peer's address: nothing to do."""

    async def set_remote(self, remote: RemoteParams) -> None:
        if self._remote_set:
            raise MediaParamsError("ICE remote parameters already set")
        ufrag = _full_agent_ufrag(remote)
        self._remote_set = True
        self._agent.set_remote_ufrag(ufrag)

    def restart_ice(self, remote: RemoteParams) -> LocalIce:
        """Answer a re-offer that restarts ICE (its ``a=ice-ufrag``/``a=ice-pwd`` changed,
        RFC 8839 4.4.1.1.1): new local credentials (RFC 8839 4.4.1.2.2: the answerer changes
        both), the same host candidate, the full agent's new ufrag. Returns what the answer
        says. The socket, the selected address and the consent timer stay: the DTLS
        association above goes on (RFC 8445 section 9)."""
        if not self._remote_set:
            raise MediaParamsError("ICE restart before the first offer's parameters")
        remote_ufrag = _full_agent_ufrag(remote)
        agent = self._agent
        for _ in range(8):
            ufrag, password = ice_credentials(self._random(21))
            if ufrag != agent.local_ufrag and password != agent.local_password:
                break
        else:
            raise ValueError("the random source keeps giving the same ICE credentials")
        agent.restart(ufrag, password, remote_ufrag)
        logger.debug("%s: ICE restart, remote ufrag %s", self, remote_ufrag)
        return self.local_ice

    def on_first_datagram(self, callback: Callable[[], None]) -> None:
        """With ICE the session starts at once whatever its DTLS role."""
        callback()

    async def connect(self) -> None:
        """Wait for the full agent's nomination (the session's set-up timer bounds it)."""
        if not self._remote_set:
            raise ConnectionError("ICE remote parameters missing")
        while self._agent.selected is None:
            if self._closed:
                raise ConnectionError(self._failure)
            self._selected = asyncio.get_running_loop().create_future()
            try:
                await self._selected
            finally:
                self._selected = None

    async def _recv(self) -> bytes:
        while not self._queue:
            if self._closed:
                raise ConnectionError(self._failure)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def _send(self, data: bytes) -> None:
        if self._closed or self._transport is None:
            raise ConnectionError(self._failure)
        selected = self._agent.selected
        if selected is None:
            logger.debug("%s: nothing nominated yet, dropping %d bytes", self, len(data))
            return
        self._transport.sendto(data, selected)

    def send_now(self, data: bytes) -> None:
        """:meth:`_send` without a coroutine (the DTLS and SCTP fast paths call it)."""
        if self._closed or self._transport is None:
            raise ConnectionError(self._failure)
        selected = self._agent.selected
        if selected is None:
            raise ConnectionError("nothing nominated yet")
        self._transport.sendto(data, selected)

    def set_fast_receiver(self, receiver: Callable[[bytes], bool] | None) -> None:
        """Offer the peer's media datagrams to ``receiver`` synchronously when nothing is
        queued and the DTLS task waits in :meth:`_recv`; None: queue every datagram."""
        self._fast = receiver

    async def close(self) -> None:
        if self._closed and (self._transport is None or self._transport.is_closing()):
            return
        self._shut("transport closed")
        # The socket is closed on the next loop iteration (connection_lost).
        await asyncio.sleep(0)

    # socket callbacks

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closed or not data:
            return
        agent = self._agent
        if data[0] < 4:
            outcome = agent.receive(data, addr, self._clock.now())
            if outcome.reply is not None and self._transport is not None:
                self._transport.sendto(outcome.reply, addr)
            if outcome.nominated:
                self._on_nominated()
            elif outcome.status and outcome.status != 200:
                logger.debug("%s: answered %d to %s", self, outcome.status, addr)
            return
        if (addr == agent.selected or agent.accepts_data(addr)) and is_media(data):
            fast = self._fast
            if fast is not None and self._waiter is not None and not self._queue:
                # The DTLS task waits for this datagram and nothing is ahead of it.
                try:
                    if fast(data):
                        return
                except Exception:  # a bug above: never out of datagram_received
                    logger.exception("%s: the fast receiver failed", self)
                    return
            self._queue.append(data)
            self._wake(self._waiter)

    def _on_nominated(self) -> None:
        self._wake(self._selected)
        if self._consent_timer is None:
            self._consent_timer = self._clock.call_later(self._consent_timeout, self._check_consent)

    def _check_consent(self) -> None:
        self._consent_timer = None
        if self._closed:
            return
        left = self._agent.last_consent + self._consent_timeout - self._clock.now()
        if left > 0:
            self._consent_timer = self._clock.call_later(left, self._check_consent)
            return
        logger.info("%s: ICE consent expired (no check for %.0f s)", self, self._consent_timeout)
        self._shut("ICE consent expired")

    def _shut(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._failure = reason
        if self._consent_timer is not None:
            self._consent_timer.cancel()
            self._consent_timer = None
        self._fast = None
        self._queue.clear()
        self._wake(self._waiter)
        self._wake(self._selected)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _connection_lost(self) -> None:
        if not self._closed:
            self._closed = True
        self._wake(self._waiter)
        self._wake(self._selected)

    @staticmethod
    def _wake(future: asyncio.Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)
