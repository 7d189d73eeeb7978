"""Builds data channel sessions: allocates the socket(s) and the local transport parameters.

One :class:`DataChannelEndpointFactory` per process (or per media address), created with the
process :class:`~avatar_mf.media.certificate.CertificateStore`. For an incoming offer::

    session = await factory.create(remote, streams, on_event=handler)
    answer_sdp = build_answer(session.local)      # the lead's SDP layer
    session.start()                               # when the answer goes out
    ...
    await session.close()                         # BYE, CANCEL, re-INVITE rejecting the m-line

ICE is used when the offer carries it (``remote.ice``), plain DTLS over UDP otherwise. The MF
answers ICE as a lite agent (:mod:`.ice_lite`, ``ice_lite=True``, the default) unless the
offerer is lite too; it offers ICE, and answers with ``ice_lite=False``, as aioice's full
agent (:mod:`.ice_transport`). A
``setup:actpass`` offer is answered ``active`` by default (RFC 8842 section 5.3 lets the answerer
choose; active starts the handshake at once, which is what both IMS UEs and browsers expect).
``actpass_answer="passive"`` suits peers whose address the SDP cannot tell (behind a NAT without
an access gateway): the no-ICE path then learns the peer from its first DTLS record.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Literal

from avatar_mf.clock import Clock, LoopClock
from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.errors import MediaParamsError
from avatar_mf.media.events import EventHandler
from avatar_mf.media.ice_lite import IceLitePath
from avatar_mf.media.ice_transport import IcePacketTransport
from avatar_mf.media.packet_path import PacketPath
from avatar_mf.media.params import (
    LocalParams,
    RemoteParams,
    Setup,
    StreamSpec,
    answer_setup,
    dtls_role,
)
from avatar_mf.media.sctp_transport import (
    AIORTC_USER_DATA_MAX_LENGTH,
    DEFAULT_TUNING,
    MIN_USER_DATA_MAX_LENGTH,
    SctpTuning,
)
from avatar_mf.media.session import DataChannelSession, MessagePredicate
from avatar_mf.media.sockets import SocketLedger
from avatar_mf.media.udp_dtls_transport import PlainUdpTransport

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 262144
"""Local ``a=max-message-size`` by default (aiortc reassembles messages of any size)."""


class DataChannelEndpointFactory:
    """Creates :class:`DataChannelSession` objects sharing one certificate and settings."""

    def __init__(
        self,
        certificate: CertificateStore,
        *,
        media_host: str,
        sctp_max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        setup_timeout: float = 10.0,
        user_data_max_length: int | None = None,
        sctp_port: int = 5000,
        actpass_answer: Literal["active", "passive"] = "active",
        fingerprint_algorithms: tuple[str, ...] = ("sha-256",),
        offer_use_srtp: bool = True,
        clock: Clock | None = None,
        sctp_tuning: SctpTuning = DEFAULT_TUNING,
        reliable_messages: Mapping[str, MessagePredicate] | None = None,
        dtls_fast_records: bool = True,
        ice_lite: bool = True,
    ) -> None:
        """
        :param certificate: the process DTLS identity.
        :param media_host: the one local address sockets are bound to and advertised
            (127.0.0.1 and ::1 work).
        :param sctp_max_message_size: local ``a=max-message-size``.
        :param setup_timeout: seconds from :meth:`DataChannelSession.start` to an established
            SCTP association before the session fails with ``"setup timeout"``.
        :param user_data_max_length: SCTP DATA chunk payload size; None keeps aiortc's (1160).
            Lower it for paths with a small MTU.
        :param sctp_port: local ``a=sctp-port``.
        :param actpass_answer: the answer's ``a=setup`` to an ``actpass`` offer.
        :param fingerprint_algorithms: hash functions of the advertised ``a=fingerprint`` lines.
        :param offer_use_srtp: offer the DTLS use_srtp extension (aiortc's default); False only
            to emulate UEs that do not.
        :param sctp_tuning: delayed SACKs and bundling (:class:`SctpTuning`).
        :param reliable_messages: per subprotocol, the messages sent fully reliably on its
            partially reliable channels (:class:`DataChannelSession`).
        :param dtls_fast_records: seal and open DTLS application data records outside
            OpenSSL once the handshake is over (media/dtls_transport.py); False: OpenSSL for
            every record.
        :param ice_lite: answer ICE offers as an ICE-lite agent (:mod:`.ice_lite`); False:
            aioice's full agent.
        :param clock: timer source for the setup timeout; the running loop by default.
        """
        if user_data_max_length is not None and not (
            MIN_USER_DATA_MAX_LENGTH <= user_data_max_length <= AIORTC_USER_DATA_MAX_LENGTH
        ):
            raise ValueError(
                f"user_data_max_length must be {MIN_USER_DATA_MAX_LENGTH}-"
                f"{AIORTC_USER_DATA_MAX_LENGTH}"
            )
        if setup_timeout <= 0:
            raise ValueError("setup_timeout must be positive")
        certificate.fingerprints(fingerprint_algorithms)  # fail early on an unknown hash name
        self._certificate = certificate
        self._media_host = media_host
        self._sctp_max_message_size = sctp_max_message_size
        self._setup_timeout = setup_timeout
        self._user_data_max_length = user_data_max_length
        self._sctp_port = sctp_port
        self._sctp_tuning = sctp_tuning
        self._reliable_messages = dict(reliable_messages or {})
        self._dtls_fast_records = dtls_fast_records
        self._ice_lite = ice_lite
        self._actpass_answer: Literal["active", "passive"] = actpass_answer
        self._fingerprint_algorithms = fingerprint_algorithms
        self._offer_use_srtp = offer_use_srtp
        self._clock = clock
        self._ledger = SocketLedger()
        self._sessions: set[DataChannelSession] = set()

    @property
    def media_host(self) -> str:
        return self._media_host

    @property
    def active_sessions(self) -> int:
        """Sessions created and not yet released."""
        return len(self._sessions)

    @property
    def open_sockets(self) -> int:
        """UDP sockets opened by this factory's sessions and not closed yet."""
        return self._ledger.open_count

    async def create(
        self,
        remote: RemoteParams,
        streams: Sequence[StreamSpec],
        *,
        on_event: EventHandler | None = None,
        setup: Literal["active", "passive"] | None = None,
        srtp: bool | None = None,
    ) -> DataChannelSession:
        """A session answering an offer: binds the socket(s) now, so the answer can be built
        from :attr:`DataChannelSession.local`; call :meth:`DataChannelSession.start` when the
        answer is sent. ``setup`` overrides the factory's choice for an ``actpass`` offer.
        ``srtp`` says whether an SRTP m-line is BUNDLEd with the data channel: the DTLS
        hello then offers use_srtp (RFC 5764), else not (a data-only association); None: the
        factory's ``offer_use_srtp``.

        Raises :class:`MediaParamsError` (488) or :class:`MediaResourceError` (503).
        """
        if remote.port == 0:
            raise MediaParamsError("the offered data channel m-line is disabled (port 0)")
        local_setup = answer_setup(remote.setup, actpass_answer=setup or self._actpass_answer)
        dtls_role(local_setup, remote.setup)  # validates before any socket is bound
        if remote.ice is not None and self._ice_lite and not remote.ice.ice_lite:
            # A lite agent facing a full one: always controlled (RFC 8445 section 6.1.1).
            if self._clock is None:
                self._clock = LoopClock()
            path: PacketPath = await IceLitePath.bind(
                self._media_host, clock=self._clock, ledger=self._ledger
            )
        elif remote.ice is not None:
            # The offerer controls unless it is ICE lite (RFC 8445 section 6.1.1).
            path = await IcePacketTransport.gather(
                self._media_host, controlling=remote.ice.ice_lite, ledger=self._ledger
            )
        else:
            path = await PlainUdpTransport.bind(self._media_host, ledger=self._ledger)
        try:
            await path.set_remote(remote)
            return self._session(path, local_setup, streams, on_event, remote=remote, srtp=srtp)
        except BaseException:
            await path.close()
            raise

    async def create_offer(
        self,
        streams: Sequence[StreamSpec],
        *,
        ice: bool,
        on_event: EventHandler | None = None,
        setup: Setup = "actpass",
    ) -> DataChannelSession:
        """A session for an offer (a test UE, or an MF-initiated call): binds the socket(s);
        :attr:`DataChannelSession.local` goes into the offer. Then call
        :meth:`DataChannelSession.set_remote` with the answer and
        :meth:`DataChannelSession.start`."""
        if ice:
            path: PacketPath = await IcePacketTransport.gather(
                self._media_host, controlling=True, ledger=self._ledger
            )
        else:
            path = await PlainUdpTransport.bind(self._media_host, ledger=self._ledger)
        try:
            return self._session(path, setup, streams, on_event)
        except BaseException:
            await path.close()
            raise

    async def close_all(self) -> None:
        """Close every live session (process shutdown)."""
        for session in list(self._sessions):
            await session.close()

    def _session(
        self,
        path: PacketPath,
        setup: Setup,
        streams: Sequence[StreamSpec],
        on_event: EventHandler | None,
        *,
        remote: RemoteParams | None = None,
        srtp: bool | None = None,
    ) -> DataChannelSession:
        address, port = path.local_address
        use_srtp = self._offer_use_srtp if srtp is None else srtp
        local = LocalParams(
            address=address,
            port=port,
            setup=setup,
            fingerprints=self._certificate.fingerprints(self._fingerprint_algorithms),
            sctp_port=self._sctp_port,
            max_message_size=self._sctp_max_message_size,
            tls_id=secrets.token_urlsafe(18),
            ice=path.local_ice,
        )
        if self._clock is None:
            self._clock = LoopClock()
        session = DataChannelSession(
            path=path,
            certificate=self._certificate.rtc_certificate(offer_use_srtp=use_srtp),
            local=local,
            streams=streams,
            clock=self._clock,
            setup_timeout=self._setup_timeout,
            user_data_max_length=self._user_data_max_length,
            sctp_tuning=self._sctp_tuning,
            reliable_messages=self._reliable_messages,
            dtls_fast_records=self._dtls_fast_records,
            on_event=on_event,
            on_released=self._sessions.discard,
            remote=remote,
        )
        self._sessions.add(session)
        return session
