"""The UE half of a data channel association, for test UEs and tests.

A UE here is the same :class:`~avatar_mf.media.session.DataChannelSession` the MF uses, built by
its own :class:`~avatar_mf.media.endpoint.DataChannelEndpointFactory` with its own certificate.
:class:`UeDataChannels` adds the knobs that make it behave like the IMS UEs the MF must accept:
DTLS without ICE, a SHA-1 ``a=fingerprint``, no ``use_srtp`` in its DTLS hello.

A SIP test UE (offerer) does::

    ue = UeDataChannels("127.0.0.1", ice=False, fingerprint_algorithm="sha-1")
    session = await ue.offer(streams, on_event=queue)        # session.local -> SDP offer
    ...send INVITE, get the answer, parse it into RemoteParams...
    await session.set_remote(answer_remote)
    session.start()

Without SIP, :func:`connect_to_mf` runs both halves against an MF factory, and
:func:`open_ue_datachannels` answers an offer the MF made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.endpoint import DataChannelEndpointFactory
from avatar_mf.media.events import EventHandler
from avatar_mf.media.params import LocalParams, Setup, StreamSpec, as_remote
from avatar_mf.media.sctp_transport import DEFAULT_TUNING, SctpTuning
from avatar_mf.media.session import DataChannelSession, MessagePredicate


class UeDataChannels:
    """A UE's data channel stack: one certificate, one local address, IMS UE behaviours."""

    def __init__(
        self,
        local_host: str,
        *,
        ice: bool = True,
        fingerprint_algorithm: str = "sha-256",
        offer_use_srtp: bool = True,
        certificate: CertificateStore | None = None,
        setup_timeout: float = 5.0,
        user_data_max_length: int | None = None,
        sctp_tuning: SctpTuning = DEFAULT_TUNING,
        reliable_messages: Mapping[str, MessagePredicate] | None = None,
        dtls_fast_records: bool = True,
    ) -> None:
        """
        :param ice: offer ICE (browser style) or DTLS straight over UDP (IMS UE style).
        :param fingerprint_algorithm: hash of the UE's only ``a=fingerprint`` (IMS UEs: sha-1).
        :param offer_use_srtp: False for a UE whose DTLS hello lacks use_srtp.
        :param dtls_fast_records: False: OpenSSL seals and opens every DTLS record.
        """
        self.ice = ice
        self.factory = DataChannelEndpointFactory(
            certificate or CertificateStore.generate(validity_days=2),
            media_host=local_host,
            setup_timeout=setup_timeout,
            user_data_max_length=user_data_max_length,
            fingerprint_algorithms=(fingerprint_algorithm,),
            offer_use_srtp=offer_use_srtp,
            sctp_tuning=sctp_tuning,
            reliable_messages=reliable_messages,
            dtls_fast_records=dtls_fast_records,
            ice_lite=False,  # a UE is a full ICE agent (browser-like), whichever side offers
        )

    async def offer(
        self,
        streams: Sequence[StreamSpec],
        *,
        on_event: EventHandler | None = None,
        setup: Setup = "actpass",
    ) -> DataChannelSession:
        """Allocate for an offer; then ``set_remote(answer)`` and ``start()``."""
        return await self.factory.create_offer(
            streams, ice=self.ice, on_event=on_event, setup=setup
        )

    async def answer(
        self,
        remote: LocalParams,
        streams: Sequence[StreamSpec],
        *,
        on_event: EventHandler | None = None,
        setup: Literal["active", "passive"] | None = None,
    ) -> DataChannelSession:
        """Answer an offer made by the MF (``remote`` is the MF's local parameters) and start.
        ICE is used when the offer has it, whatever :attr:`ice` says."""
        session = await self.factory.create(
            as_remote(remote), streams, on_event=on_event, setup=setup
        )
        session.start()
        return session


async def open_ue_datachannels(
    local_host: str,
    remote: LocalParams,
    streams: Sequence[StreamSpec],
    *,
    ice: bool,
    on_event: EventHandler | None = None,
    fingerprint_algorithm: str = "sha-256",
    offer_use_srtp: bool = True,
) -> tuple[DataChannelSession, LocalParams]:
    """The UE answering an offer made by the MF (``remote``: the MF session's ``local``).
    Returns the started UE session and its parameters (for the MF's ``set_remote``)."""
    if ice != (remote.ice is not None):
        raise ValueError("the UE answers ICE exactly when the MF offered it")
    ue = UeDataChannels(
        local_host,
        ice=ice,
        fingerprint_algorithm=fingerprint_algorithm,
        offer_use_srtp=offer_use_srtp,
    )
    session = await ue.answer(remote, streams, on_event=on_event)
    return session, session.local


async def connect_to_mf(
    mf: DataChannelEndpointFactory,
    ue: UeDataChannels,
    streams: Sequence[StreamSpec],
    *,
    mf_events: EventHandler | None = None,
    ue_events: EventHandler | None = None,
    ue_setup: Setup = "actpass",
    mf_setup: Literal["active", "passive"] | None = None,
) -> tuple[DataChannelSession, DataChannelSession]:
    """The whole offer/answer without SIP: UE offers, MF answers, both start.
    Returns (mf_session, ue_session); wait for :class:`SessionConnected` on either."""
    ue_session = await ue.offer(streams, on_event=ue_events, setup=ue_setup)
    try:
        mf_session = await mf.create(
            as_remote(ue_session.local), streams, on_event=mf_events, setup=mf_setup
        )
    except BaseException:
        await ue_session.close()
        raise
    try:
        await ue_session.set_remote(as_remote(mf_session.local))
    except BaseException:
        await mf_session.close()
        await ue_session.close()
        raise
    mf_session.start()
    ue_session.start()
    return mf_session, ue_session
