"""One test UE call: INVITE with a data channel offer, ACK, data channels up, BYE.

::

    async with UeCall.dial("sip:avatar@127.0.0.1", "127.0.0.1", 5060, ice=False) as call:
        await call.wait_channels_open(5.0)
        call.send(1000, '{"hello": 1}')
        reply = await call.receive(1000, timeout=2.0)
        await call.add_streams([DcMap(1004, subprotocol="3gpp-ar-metadata")])  # re-INVITE
    # BYE sent, media and SIP socket closed; call.summary() has the figures

The UAC side of RFC 3261 that the call drives (the transactions themselves are the product's
:class:`~avatar_mf.sip.transaction_layer.TransactionLayer`, see :mod:`.sip_client`):

* 13.2.1 / 8.1.1: the INVITE (From tag, Call-ID, CSeq, Contact with the data channel feature
  tag ``+sip.app-subtype="webrtc-datachannel"`` of TS 24.186, Content-Type application/sdp);
* 13.2.2.4 / 12.1.2: the 2xx creates the dialog (remote tag, remote target from Contact,
  route set from Record-Route reversed); the ACK carries the INVITE's CSeq number;
* 14.1: a re-INVITE inside the dialog adds streams (RFC 8864 section 6: new ``a=dcmap`` lines,
  same ``a=tls-id`` so the DTLS association is kept, RFC 8842 section 5);
* 15.1.1 / 15.1.2: BYE from the UE on exit; a BYE from the MF is answered 200 and ends the
  call; an UPDATE without a body (an RFC 4028 refresh) is answered 200.

Media: the UE half of the data channels is :class:`~avatar_mf.media.ue_side.UeDataChannels`,
offering ICE or, IMS style, plain DTLS over UDP (optionally with a SHA-1 fingerprint and no
use_srtp, like field UEs). Channels are created only for the streams the answer accepted.

Times come from ``time.monotonic`` (injectable); :class:`CallTiming` keeps the marks and derives
``answer_seconds`` (INVITE sent -> 200 received) and ``setup_seconds`` (INVITE sent -> every
accepted channel open).

Messages: each stream's messages wait in an inbox for :meth:`UeCall.receive`, unless a handler
took the stream (:meth:`UeCall.set_handler`): then each message is handed to it as it arrives,
with its arrival time (what :class:`~avatar_mf.ue.avatar.AvatarClient` does for the avatar
channels, so that receive times are exact). :meth:`UeCall.pause_media` /
:meth:`UeCall.resume_media` inject a receiver that stops reading its association (tests of a
slow receiver).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal

from avatar_mf.arf import is_config_unit
from avatar_mf.media.certificate import CertificateStore
from avatar_mf.media.errors import MediaError
from avatar_mf.media.events import (
    ChannelClosed,
    ChannelOpened,
    MessageReceived,
    SessionClosed,
    SessionConnected,
    SessionEvent,
    SessionFailed,
)
from avatar_mf.media.params import RemoteParams, Setup
from avatar_mf.media.sctp_transport import DEFAULT_TUNING, SctpTuning
from avatar_mf.media.sdp_params import stream_spec
from avatar_mf.media.session import DataChannelSession
from avatar_mf.media.ue_side import UeDataChannels
from avatar_mf.protocol.names import SUBPROTOCOL_ANIMATION
from avatar_mf.sdp.datachannel import DcMap, DcSa
from avatar_mf.sdp.errors import SdpError
from avatar_mf.sdp.model import MediaDescription, SessionDescription, parse_sdp, serialize_sdp
from avatar_mf.sip.build import make_response, new_call_id, new_tag
from avatar_mf.sip.dialog import Dialog
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Headers, Request, Response
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.ue.offer import (
    AMR_WB_AUDIO_PORT,
    ANSWER_STREAMS,
    DEFAULT_STREAMS,
    AnswerError,
    AnswerInfo,
    build_answer,
    build_offer,
    read_answer,
    read_offer,
)
from avatar_mf.ue.rtp_audio import UeAudio
from avatar_mf.ue.rtp_video import UeVideo
from avatar_mf.ue.sip_client import DEFAULT_USER_AGENT, SipClient, SipTransportName

__all__ = [
    "DATACHANNEL_FEATURE_TAG",
    "CallRejected",
    "CallState",
    "CallTiming",
    "ChannelStats",
    "MessageHandler",
    "UeCall",
    "UeCallError",
]

log = logging.getLogger(__name__)

#: TS 24.186: a UE able to run data channels says so in its Contact.
DATACHANNEL_FEATURE_TAG = ';+sip.app-subtype="webrtc-datachannel"'
_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
# How long releasing a call waits for the answer to a CANCEL still in flight (Timer F is
# longer; a proxy answers a CANCEL at once, RFC 3261 16.10).
_CANCEL_ANSWER_WAIT = 2.0

CallState = Literal["idle", "calling", "confirmed", "ended"]

#: Takes the messages of one stream as they arrive: ``handler(data, at)``, ``at`` on the
#: call's clock. It runs in the media event callback: it must not block.
MessageHandler = Callable[[str | bytes, float], None]


class UeCallError(Exception):
    """The call failed. ``status`` is the SIP status when a response caused it."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CallRejected(UeCallError):
    """The MF answered the INVITE (or re-INVITE) with a final non-2xx response."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.status} {response.reason}", status=response.status)
        self.response = response
        self.reason = response.reason


@dataclass(slots=True)
class CallTiming:
    """Monotonic marks (seconds, the call's ``now`` clock) of one call; ``None`` until reached."""

    invite_sent: float | None = None
    """The initial INVITE left."""
    provisional: float | None = None
    """The first 1xx arrived."""
    answered: float | None = None
    """The 200 to the INVITE arrived."""
    connected: float | None = None
    """The SCTP association is up (ICE and DTLS done)."""
    channels_open: float | None = None
    """Every stream accepted by the initial answer is open."""
    ended: float | None = None
    """BYE sent or received (or the call failed)."""

    def _since_invite(self, mark: float | None) -> float | None:
        if mark is None or self.invite_sent is None:
            return None
        return mark - self.invite_sent

    @property
    def answer_seconds(self) -> float | None:
        """INVITE sent -> 200 received."""
        return self._since_invite(self.answered)

    @property
    def connect_seconds(self) -> float | None:
        """INVITE sent -> SCTP association up."""
        return self._since_invite(self.connected)

    @property
    def setup_seconds(self) -> float | None:
        """INVITE sent -> every accepted channel open."""
        return self._since_invite(self.channels_open)


@dataclass(slots=True)
class ChannelStats:
    """Counters of one data channel (mutable; read them)."""

    stream_id: int
    label: str
    subprotocol: str
    open: bool = False
    """The channel is open now."""
    opened_after: float | None = None
    """Seconds from the INVITE to the channel's open."""
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "subprotocol": self.subprotocol,
            "opened": self.opened_after is not None,
            "opened_after": _round(self.opened_after),
            "messages_sent": self.messages_sent,
            "bytes_sent": self.bytes_sent,
            "messages_received": self.messages_received,
            "bytes_received": self.bytes_received,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


class UeCall:
    """A SIP call from a test UE to the MF carrying WebRTC data channels.

    Create it with :meth:`dial` and use it as an async context manager (or call
    :meth:`connect` and :meth:`hangup` yourself). Not reusable.
    """

    def __init__(
        self,
        target_uri: str,
        mf_host: str,
        mf_port: int,
        *,
        transport: SipTransportName = "udp",
        ice: bool = True,
        streams: Sequence[DcMap] = DEFAULT_STREAMS,
        dcsas: Sequence[DcSa] = (),
        audio: bool = False,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        from_uri: str | None = None,
        fingerprint_algorithm: str = "sha-256",
        offer_use_srtp: bool = True,
        sctp_tuning: SctpTuning = DEFAULT_TUNING,
        setup: Setup = "actpass",
        max_message_size: int | None = None,
        certificate: CertificateStore | None = None,
        setup_timeout: float = 10.0,
        answer_timeout: float = 10.0,
        start_media: bool = True,
        timers: TimerConfig | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        contact_feature_tags: str = DATACHANNEL_FEATURE_TAG,
        contact_user: str = "ue",
        extra_headers: Sequence[tuple[str, str]] = (),
        now: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
        rtp_audio: UeAudio | None = None,
        rtp_video: UeVideo | None = None,
    ) -> None:
        """See :meth:`dial` for the parameters."""
        #: The UE's RTP audio (an audio m-line first in the offer, RTP sent and recorded).
        self.rtp_audio = rtp_audio
        #: The UE's RTP video (a video m-line after the audio one, test pictures sent).
        self.rtp_video = rtp_video
        self.target_uri = target_uri
        self.mf_host = mf_host
        self.mf_port = mf_port
        self.transport: SipTransportName = transport
        self._tls = tls
        self.ice = ice
        self.offered: tuple[DcMap, ...] = tuple(streams)
        self._dcsas = tuple(dcsas)
        self._audio_port = AMR_WB_AUDIO_PORT if audio else None
        self.local_host = local_host
        self._local_port = local_port
        self.from_uri = from_uri or f"sip:ue@{local_host}"
        self._fingerprint_algorithm = fingerprint_algorithm
        self._offer_use_srtp = offer_use_srtp
        self._sctp_tuning = sctp_tuning
        self._setup: Setup = setup
        self._max_message_size = max_message_size
        self._certificate = certificate
        self._setup_timeout = setup_timeout
        self._answer_timeout = answer_timeout
        self._start_media = start_media
        self._timers = timers
        self._user_agent = user_agent
        self._feature_tags = contact_feature_tags
        self._contact_user = contact_user
        self._extra_headers = tuple(extra_headers)
        self._now = now

        self.state: CallState = "idle"
        self.timing = CallTiming()
        self.channels: dict[int, ChannelStats] = {}
        """Stats of every stream the MF accepted (now or earlier), by stream id."""
        self.accepted: tuple[DcMap, ...] = ()
        """The streams of the latest answer."""
        self.rejected: tuple[DcMap, ...] = ()
        """Offered streams the latest answer left out."""
        self.errors: list[str] = []
        """Everything that went wrong, in order (empty for a clean call)."""
        self.final_status: int | None = None
        """Status of the final response to the initial INVITE."""
        self.bye_status: int | None = None
        """Status of the response to the UE's BYE (None: no BYE sent or no answer)."""
        self.ended_by: Literal["ue", "mf"] | None = None
        """Who ended the call (the UE's BYE or hangup, or the MF's BYE)."""
        self.end_reason = ""
        self.media_end: str | None = None
        """Why the data channel session ended, once it has (e.g. ``"closed"``)."""
        self.call_id = ""
        self.offer: SessionDescription | None = None
        self.answer: SessionDescription | None = None
        self.remote: RemoteParams | None = None
        """The MF's data channel parameters from the latest answer (its max-message-size)."""

        self._sip: SipClient | None = None
        self._session: DataChannelSession | None = None
        self._dialog: Dialog | None = None
        self._local_tag = new_tag()
        self._session_id = 0
        self._sdp_version = 0
        self._inbox: dict[int, collections.deque[str | bytes]] = {}
        self._handlers: dict[int, MessageHandler] = {}
        self._media_gate: asyncio.Event | None = None
        self._changed = asyncio.Event()
        self._media_failed: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The CANCEL in flight: the INVITE's 487 may overtake the CANCEL's own 200 (a proxy
        # relays both), so releasing the call waits for it before closing the SIP socket.
        self._cancelling: asyncio.Future[Response | None] | None = None
        self._closed = False
        self._take_all_streams = False
        self._owns_sip = True
        self.direction: Literal["outgoing", "incoming"] = "outgoing"
        """``incoming``: the UE answered this call (:meth:`incoming`)."""

    @classmethod
    def dial(
        cls,
        target_uri: str,
        mf_host: str,
        mf_port: int,
        *,
        transport: SipTransportName = "udp",
        ice: bool = True,
        streams: Sequence[DcMap] = DEFAULT_STREAMS,
        dcsas: Sequence[DcSa] = (),
        audio: bool = False,
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        from_uri: str | None = None,
        fingerprint_algorithm: str = "sha-256",
        offer_use_srtp: bool = True,
        sctp_tuning: SctpTuning = DEFAULT_TUNING,
        setup: Setup = "actpass",
        max_message_size: int | None = None,
        certificate: CertificateStore | None = None,
        setup_timeout: float = 10.0,
        answer_timeout: float = 10.0,
        start_media: bool = True,
        timers: TimerConfig | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        contact_feature_tags: str = DATACHANNEL_FEATURE_TAG,
        contact_user: str = "ue",
        extra_headers: Sequence[tuple[str, str]] = (),
        now: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
        rtp_audio: UeAudio | None = None,
        rtp_video: UeVideo | None = None,
    ) -> UeCall:
        """A call to ``target_uri`` through the MF at ``mf_host:mf_port``; ``async with`` it
        to place it (INVITE ... ACK, media started) and to end it (BYE, media closed).

        :param transport: SIP over ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``.
        :param ice: offer ICE (browser style) or DTLS straight over UDP (IMS style).
        :param streams: the ``a=dcmap`` streams to offer (default :data:`DEFAULT_STREAMS`).
        :param dcsas: ``a=dcsa`` lines to offer with them.
        :param audio: put an AMR-WB audio m-line first, as a VoLTE UE does (no RTP is sent).
        :param local_port: the UE's SIP port (0: any free one).
        :param fingerprint_algorithm: hash of the UE's ``a=fingerprint`` (IMS UEs: sha-1).
        :param offer_use_srtp: False for a DTLS hello without use_srtp (some IMS UEs).
        :param sctp_tuning: the UE's delayed SACKs and bundling (``AIORTC_TUNING``: aiortc's).
        :param setup: the offer's ``a=setup``: ``actpass`` (the RFC 8842 default), or
            ``passive``/``active`` to force the UE's DTLS role (field IMS offers: passive).
        :param max_message_size: the offer's ``a=max-message-size`` (IMS UEs often say 1024);
            by default the UE's real limit (it reassembles messages of any size).
        :param certificate: the UE's DTLS identity; a fresh one by default.
        :param setup_timeout: seconds the UE's media allows for ICE + DTLS + SCTP.
        :param answer_timeout: seconds to wait for the final response to the INVITE.
        :param start_media: False offers data channels but never starts ICE/DTLS (a UE that
            never connects, like SIPp): the MF must give up and end the call.
        :param timers: SIP T1/T2/T4 of the UE's transactions.
        :param contact_feature_tags: appended to the Contact (``;+sip...`` parameters).
        :param contact_user: the user part of the Contact (a registered UE: its own).
        :param extra_headers: added to the INVITE.
        :param now: the clock of :attr:`timing` (``time.monotonic``: fine-grained, and the same
            in every process, unlike uvloop's millisecond ``loop.time()``).
        :param tls: verifies the MF's certificate over tls and wss (default: the system's
            trust store).
        :param rtp_audio: IMS-style audio (:class:`~avatar_mf.ue.rtp_audio.UeAudio`): its
            m-line goes first in the offer; RTP flows once the answer comes.
        :param rtp_video: IMS-style video (:class:`~avatar_mf.ue.rtp_video.UeVideo`): its
            m-line follows the audio one; pictures flow once the answer comes.
        """
        return cls(
            target_uri,
            mf_host,
            mf_port,
            transport=transport,
            ice=ice,
            streams=streams,
            dcsas=dcsas,
            audio=audio,
            local_host=local_host,
            local_port=local_port,
            from_uri=from_uri,
            fingerprint_algorithm=fingerprint_algorithm,
            offer_use_srtp=offer_use_srtp,
            sctp_tuning=sctp_tuning,
            setup=setup,
            max_message_size=max_message_size,
            certificate=certificate,
            setup_timeout=setup_timeout,
            answer_timeout=answer_timeout,
            start_media=start_media,
            timers=timers,
            user_agent=user_agent,
            contact_feature_tags=contact_feature_tags,
            contact_user=contact_user,
            extra_headers=extra_headers,
            now=now,
            tls=tls,
            rtp_audio=rtp_audio,
            rtp_video=rtp_video,
        )

    async def __aenter__(self) -> UeCall:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.hangup()

    # -- views ----------------------------------------------------------------------------

    @property
    def sip(self) -> SipClient:
        """The UE's SIP endpoint (after :meth:`connect` started)."""
        if self._sip is None:
            raise UeCallError("the call has not been placed")
        return self._sip

    @property
    def session(self) -> DataChannelSession | None:
        """The UE's data channel session (None before the offer and after the end)."""
        return self._session

    @property
    def local_tag(self) -> str:
        """The UE's tag in the dialog (From tag of an outgoing call, To tag of an incoming one)."""
        return self._local_tag

    @property
    def accepted_ids(self) -> tuple[int, ...]:
        return tuple(d.stream_id for d in self.accepted)

    @property
    def rejected_ids(self) -> tuple[int, ...]:
        return tuple(d.stream_id for d in self.rejected)

    @property
    def open_ids(self) -> tuple[int, ...]:
        """Streams whose channel is open now."""
        return tuple(sid for sid, stats in self.channels.items() if stats.open)

    def _all_open(self) -> bool:
        return all(self.channels[d.stream_id].open for d in self.accepted)

    def now(self) -> float:
        """The call's clock (the ``now`` given to :meth:`dial`): receive times use it."""
        return self._now()

    @property
    def local_max_message_size(self) -> int:
        """The UE's own ``a=max-message-size`` as offered (0: no limit): the MF must not send
        larger messages."""
        if self.offer is not None:
            for md in self.offer.media:
                value = md.attribute_value("max-message-size")
                if value is not None and value.isdigit():
                    return int(value)
        if self._max_message_size is not None:
            return self._max_message_size
        return self._session.local.max_message_size if self._session is not None else 0

    @property
    def remote_max_message_size(self) -> int:
        """The MF's ``a=max-message-size`` from its answer (0: no limit): never send larger."""
        return self.remote.max_message_size if self.remote is not None else 0

    def subprotocol_of(self, stream_id: int) -> str:
        """The subprotocol the answer accepted for ``stream_id`` ("" if none or not accepted)."""
        for dcmap in self.accepted:
            if dcmap.stream_id == stream_id:
                return dcmap.subprotocol or ""
        return ""

    def streams_with(self, subprotocol: str) -> tuple[int, ...]:
        """The accepted streams whose subprotocol is ``subprotocol``, in answer order."""
        wanted = subprotocol.lower()
        return tuple(d.stream_id for d in self.accepted if (d.subprotocol or "").lower() == wanted)

    # -- setup: an incoming call ----------------------------------------------------------

    @classmethod
    def over(cls, sip: SipClient, target_uri: str, **options: Any) -> UeCall:
        """A call to ``target_uri`` placed from an open SIP endpoint (a registered UE's, see
        :meth:`UeListener.dial <avatar_mf.ue.listener.UeListener.dial>`): its requests go to
        that endpoint's proxy, its Contact is the registered one, and hanging up leaves the
        endpoint open. ``options`` are those of :meth:`dial` (not transport or ports)."""
        options.setdefault("local_host", sip.local_host)
        call = cls(target_uri, sip.server.host, sip.server.port, transport=sip.transport, **options)
        call._sip = sip
        call._owns_sip = False
        return call

    @classmethod
    def incoming(
        cls,
        sip: SipClient,
        invite: Request,
        *,
        streams: Sequence[DcMap] | None = ANSWER_STREAMS,
        local_host: str | None = None,
        certificate: CertificateStore | None = None,
        setup_timeout: float = 10.0,
        user_agent: str = DEFAULT_USER_AGENT,
        contact_feature_tags: str = DATACHANNEL_FEATURE_TAG,
        contact_user: str = "ue",
        now: Callable[[], float] = time.monotonic,
        rtp_audio: UeAudio | None = None,
    ) -> UeCall:
        """A call the UE received on ``sip`` (a listening UE's endpoint, which the call uses
        but does not close). Answer it with :meth:`answer_invite`.

        :param streams: the streams the UE takes from the offer, by subprotocol (None: every
            offered stream); the default is the UE's usual set (http, 3gpp-ar-metadata,
            3gpp-ar-animation, avatar-mf-transfer).
        """
        frm = invite.headers.get("From") or ""
        try:
            caller = parse_name_addr(frm).uri
        except SipParseError:
            caller = frm
        call = cls(
            caller,
            sip.server.host,
            sip.server.port,
            transport=sip.transport,
            streams=tuple(streams) if streams is not None else (),
            local_host=local_host or sip.local_host,
            from_uri=invite.uri,
            certificate=certificate,
            setup_timeout=setup_timeout,
            user_agent=user_agent,
            contact_feature_tags=contact_feature_tags,
            contact_user=contact_user,
            now=now,
            rtp_audio=rtp_audio,
        )
        call._sip = sip
        call._owns_sip = False
        call._take_all_streams = streams is None
        call.direction = "incoming"
        call.call_id = invite.headers.get("Call-ID") or ""
        call.timing.invite_sent = now()
        return call

    async def answer_invite(self, invite: Request) -> Response:
        """Answer the INVITE's offer (RFC 3264 section 6, RFC 8864 section 6): bind the UE's
        data channel transport, accept the offered streams the UE wants, create the UAS
        dialog (RFC 3261 12.1.1: route set from Record-Route, remote target from Contact) and
        return the 200 for the caller to send (and retransmit until its ACK). The media starts
        at once (the UE answers ``a=setup:active`` to an ``actpass`` offer: it opens DTLS).

        Raises :class:`SipError` (488) when the offer is unusable; nothing stays allocated.
        """
        if self.state != "idle" or self.direction != "incoming":
            raise UeCallError(f"answer_invite() on a call that is {self.state}")
        self.state = "calling"
        try:
            offer = parse_sdp(invite.body)
            info = read_offer(offer, None if self._take_all_streams else self.offered)
        except (SdpError, AnswerError) as exc:
            self.state = "ended"
            self.errors.append(f"offer: {exc}")
            raise SipError(488, "Not Acceptable Here") from exc
        media = UeDataChannels(
            self.local_host,
            ice=info.remote.ice is not None,
            fingerprint_algorithm=self._fingerprint_algorithm,
            offer_use_srtp=self._offer_use_srtp,
            sctp_tuning=self._sctp_tuning,
            reliable_messages={SUBPROTOCOL_ANIMATION: is_config_unit},
            certificate=self._certificate,
            setup_timeout=self._setup_timeout,
        )
        try:
            session = await media.factory.create(
                info.remote, [stream_spec(d) for d in info.accepted], on_event=self._on_event
            )
        except MediaError as exc:
            self.state = "ended"
            self.errors.append(f"media: {exc}")
            raise SipError(488, "Not Acceptable Here") from exc
        self._session = session
        self._session_id = secrets.randbelow(2**31)
        self.offer = offer
        audio_lines: dict[int, MediaDescription] = {}
        audio_index = next(
            (i for i, md in enumerate(offer.media) if md.media.lower() == "audio" and md.port),
            None,
        )
        if self.rtp_audio is not None and audio_index is not None:
            await self.rtp_audio.open()
            audio_lines[audio_index] = self.rtp_audio.answer(offer, audio_index)
        self.answer = build_answer(
            offer, info, session.local, session_id=self._session_id, audio=audio_lines
        )
        self.remote = info.remote
        self.offered = info.offered
        self.accepted = info.accepted
        self.rejected = tuple(d for d in info.offered if d not in info.accepted)
        for dcmap in info.accepted:
            self.channels[dcmap.stream_id] = ChannelStats(
                dcmap.stream_id, dcmap.label or "", dcmap.subprotocol or ""
            )
            self._inbox.setdefault(dcmap.stream_id, collections.deque())
        self._dialog = Dialog.from_request(invite, self._local_tag)
        self.sip.add_dialog(self._dialog.id, self._on_request)
        ok = make_response(
            invite,
            200,
            to_tag=self._local_tag,
            headers=[
                *(("Record-Route", rr) for rr in invite.headers.get_list("Record-Route")),
                ("Contact", self._contact()),
                ("Allow", _ALLOW),
            ],
            body=serialize_sdp(self.answer).encode(),
            content_type="application/sdp",
        )
        self.final_status = 200
        self.timing.answered = self._now()
        self.state = "confirmed"
        session.start()
        self._changed.set()
        return ok

    def end_unanswered(self, reason: str) -> None:
        """The incoming call ended before it was answered (CANCEL, rejection)."""
        self._ended("mf", reason)
        self._closed = True

    # -- setup ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Place the call: INVITE, wait for the final response, ACK, start the data channels.

        Raises :class:`CallRejected` for a non-2xx answer, :class:`UeCallError` for an
        unusable answer or a transport failure, :class:`TimeoutError` when no final response
        came within ``answer_timeout``. Everything allocated is released on failure; when the
        wait is cancelled (Ctrl-C) or times out while the INVITE is pending, the INVITE is
        CANCELled first (RFC 3261 9.1), so the callee stops ringing.
        """
        if self.state != "idle":
            raise UeCallError(f"connect() on a call that is {self.state}")
        self.state = "calling"
        try:
            await self._connect()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.errors.append(f"setup: {exc!r}")
            if isinstance(exc, asyncio.CancelledError | TimeoutError) and self.state == "calling":
                with contextlib.suppress(Exception):
                    await self.cancel(timeout=1.0)
            await self._release("setup failed")
            raise

    async def _connect(self) -> None:
        if self._sip is None:
            self._sip = await SipClient.open(
                self.mf_host,
                self.mf_port,
                transport=self.transport,
                local_host=self.local_host,
                local_port=self._local_port,
                timers=self._timers,
                user_agent=self._user_agent,
                tls=self._tls,
            )
        media = UeDataChannels(
            self.local_host,
            ice=self.ice,
            fingerprint_algorithm=self._fingerprint_algorithm,
            offer_use_srtp=self._offer_use_srtp,
            sctp_tuning=self._sctp_tuning,
            reliable_messages={SUBPROTOCOL_ANIMATION: is_config_unit},
            certificate=self._certificate,
            setup_timeout=self._setup_timeout,
        )
        # No channel before the answer: only the accepted streams get one.
        self._session = await media.offer([], on_event=self._on_event, setup=self._setup)
        if self.rtp_audio is not None:
            await self.rtp_audio.open()
        if self.rtp_video is not None:
            await self.rtp_video.open()
        self._session_id = secrets.randbelow(2**31)
        self.offer = self._next_offer(self.offered)

        self.call_id = new_call_id(self.local_host)
        invite = Request(
            "INVITE",
            self.target_uri,
            Headers.of(
                [
                    ("Max-Forwards", "70"),
                    ("From", f"<{self.from_uri}>;tag={self._local_tag}"),
                    ("To", f"<{self.target_uri}>"),
                    ("Call-ID", self.call_id),
                    ("CSeq", "1 INVITE"),
                    ("Contact", self._contact()),
                    ("Allow", _ALLOW),
                    ("Accept", "application/sdp"),
                    *self._extra_headers,
                    ("Content-Type", "application/sdp"),
                ]
            ),
            serialize_sdp(self.offer).encode(),
        )
        self.timing.invite_sent = self._now()
        async with asyncio.timeout(self._answer_timeout):
            response = await self.sip.request(invite, on_provisional=self._on_provisional)
        self.final_status = response.status
        if response.status >= 300:
            raise CallRejected(response)
        self.timing.answered = self._now()

        self._dialog = self._uac_dialog(invite, response)
        self.sip.add_dialog(self._dialog.id, self._on_request)
        self._ack(self._dialog, 1)
        self.state = "confirmed"
        try:
            info = self._read_answer(response, self.offered)
        except UeCallError:
            await self._bye(timeout=2.0)
            raise
        self._apply_answer(info)
        if self.rtp_audio is not None and self.answer is not None and self.answer.media:
            first = self.answer.media[0]
            if first.media.lower() == "audio":
                conn = self.answer.connection_for(0)
                self.rtp_audio.start(first, conn.address if conn is not None else self.mf_host)
        if self.rtp_video is not None and self.answer is not None:
            for index, md in enumerate(self.answer.media):
                if md.media.lower() == "video":
                    conn = self.answer.connection_for(index)
                    self.rtp_video.start(md, conn.address if conn is not None else self.mf_host)
                    break
        session = self._session
        if self._start_media and session is not None:
            await session.set_remote(info.remote)
            # WebRTC audio and video BUNDLEd with the data channel.
            for rtp in (self.rtp_audio, self.rtp_video):
                if rtp is not None and rtp.srtp is not None:
                    session.attach_srtp(rtp.srtp)
            session.start()

    async def cancel(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> int | None:
        """CANCEL the INVITE while it waits for its final response (RFC 3261 9.1); the
        pending :meth:`connect` then ends with :class:`CallRejected` (487). Returns the status
        of the CANCEL's own response, or None when there was nothing to cancel."""
        if self.state != "calling" or self._sip is None or self.direction != "outgoing":
            return None
        if self._cancelling is None:
            self._cancelling = asyncio.ensure_future(self._sip.cancel(self.call_id))
            self._cancelling.add_done_callback(_retrieve)
        async with asyncio.timeout(timeout):
            response = await asyncio.shield(self._cancelling)
        return None if response is None else response.status

    def _contact(self) -> str:
        return self.sip.contact(self._contact_user, feature_tags=self._feature_tags)

    def _next_offer(self, streams: Sequence[DcMap]) -> SessionDescription:
        assert self._session is not None
        self._sdp_version += 1
        local = self._session.local
        if self._max_message_size is not None:
            local = replace(local, max_message_size=self._max_message_size)
        audio = self.rtp_audio.media() if self.rtp_audio is not None else None
        if audio is None and self.direction == "incoming" and self.answer is not None:
            # An audio m-line of the caller's offer that this UE refused stays in its
            # re-offers, still disabled (port 0): m-lines cannot be removed (RFC 3264 8).
            audio = next(
                (m for m in self.answer.media if m.media.lower() == "audio" and m.port == 0),
                None,
            )
        return build_offer(
            local,
            streams,
            session_id=self._session_id,
            session_version=self._sdp_version,
            audio_port=self._audio_port,
            audio=audio,
            video=self.rtp_video.media() if self.rtp_video is not None else None,
            dcsas=[s for s in self._dcsas if s.stream_id in {d.stream_id for d in streams}],
        )

    def _on_provisional(self, response: Response) -> None:
        if self.timing.provisional is None:
            self.timing.provisional = self._now()

    def _uac_dialog(self, invite: Request, response: Response) -> Dialog:
        """RFC 3261 12.1.2: the UAC's dialog state from its INVITE and the 2xx."""
        try:
            to = parse_name_addr(response.headers.get("To") or "")
            contacts = response.headers.get_list("Contact")
            target = parse_name_addr(contacts[0]).uri if contacts else self.target_uri
        except SipParseError as exc:
            raise UeCallError(f"unusable 2xx: {exc.reason}", status=response.status) from exc
        if not to.tag:
            raise UeCallError("2xx without a To tag", status=response.status)
        return Dialog(
            call_id=self.call_id,
            local_tag=self._local_tag,
            remote_tag=to.tag,
            local_uri=self.from_uri,
            remote_uri=self.target_uri,
            remote_target=target,
            route_set=tuple(reversed(response.headers.get_list("Record-Route"))),
            remote_seq=0,
            local_seq=int((invite.headers.get("CSeq") or "1").split()[0]),
        )

    def _ack(self, dialog: Dialog, seq: int) -> None:
        """The ACK for the 2xx to the INVITE with CSeq ``seq`` (RFC 3261 13.2.2.4)."""
        _, ack = replace(dialog, local_seq=seq - 1).next_request("ACK", contact=self._contact())
        self.sip.send_ack(ack)

    def _read_answer(self, response: Response, offered: Sequence[DcMap]) -> AnswerInfo:
        assert self.offer is not None
        try:
            answer = parse_sdp(response.body)
            info = read_answer(self.offer, answer, offered)
        except (SdpError, AnswerError) as exc:
            raise UeCallError(f"unusable SDP answer: {exc}", status=response.status) from exc
        self.answer = answer
        self.remote = info.remote
        return info

    def _apply_answer(self, info: AnswerInfo) -> None:
        """Create channels for newly accepted streams, close the ones no longer accepted."""
        before = set(self.accepted_ids)
        self.accepted, self.rejected = info.accepted, info.rejected
        now = set(self.accepted_ids)
        session = self._session
        for dcmap in info.accepted:
            if dcmap.stream_id in before:
                continue
            self.channels[dcmap.stream_id] = ChannelStats(
                dcmap.stream_id, dcmap.label or "", dcmap.subprotocol or ""
            )
            self._inbox.setdefault(dcmap.stream_id, collections.deque())
        new = [stream_spec(d) for d in info.accepted if d.stream_id not in before]
        if session is not None and new:
            session.add_streams(new)
        for gone in before - now:
            if session is not None and gone in session.channels:
                session.close_stream(gone)
        self._changed.set()

    # -- media events ---------------------------------------------------------------------

    def _on_event(self, event: SessionEvent) -> None:
        now = self._now()
        if isinstance(event, MessageReceived):
            stats = self.channels.get(event.stream_id)
            if stats is not None:
                stats.messages_received += 1
                stats.bytes_received += _size(event.data)
            handler = self._handlers.get(event.stream_id)
            if handler is None:
                self._inbox.setdefault(event.stream_id, collections.deque()).append(event.data)
            else:
                self._deliver(handler, event.stream_id, event.data, now)
        elif isinstance(event, ChannelOpened):
            stats = self.channels.get(event.stream_id)
            if stats is not None:
                stats.open = True
                if stats.opened_after is None and self.timing.invite_sent is not None:
                    stats.opened_after = now - self.timing.invite_sent
        elif isinstance(event, ChannelClosed):
            stats = self.channels.get(event.stream_id)
            if stats is not None:
                stats.open = False
        elif isinstance(event, SessionConnected):
            self.timing.connected = now
        elif isinstance(event, SessionFailed):
            self._media_failed = self.media_end = event.reason
            self._session = None
            if self.state != "ended":
                self.errors.append(f"media failed: {event.reason}")
        elif isinstance(event, SessionClosed):
            # The MF may close the association just before its BYE arrives: not an error.
            self._media_failed = self.media_end = event.reason
            self._session = None
        if (
            self.timing.channels_open is None
            and self.timing.connected is not None
            and self.accepted
            and self._all_open()
        ):
            self.timing.channels_open = now
        self._changed.set()

    async def _wait(
        self,
        ready: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
        what: str,
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what} within {timeout} s") from None

    # -- using the channels ---------------------------------------------------------------

    async def wait_channels_open(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> None:
        """Wait until every accepted stream's channel is open.

        Raises :class:`TimeoutError`, or :class:`UeCallError` if the media failed or the call
        ended first.
        """

        def ready() -> bool:
            return self._all_open() or self._media_failed is not None or self.state == "ended"

        if self.state == "idle":
            raise UeCallError("the call has not been placed")
        await self._wait(ready, timeout, "channels not open")
        if not self._all_open():
            raise UeCallError(
                f"channels not open: {self._media_failed or self.end_reason or self.state}"
            )

    def send(self, stream_id: int, data: str | bytes) -> None:
        """Send one message (str: WebRTC String, bytes: WebRTC Binary) on ``stream_id``."""
        session = self._session
        if session is None:
            raise UeCallError(f"no media: cannot send on stream {stream_id}")
        try:
            session.send(stream_id, data)
        except MediaError as exc:
            raise UeCallError(f"cannot send on stream {stream_id}: {exc}") from exc
        stats = self.channels.get(stream_id)
        if stats is not None:
            stats.messages_sent += 1
            stats.bytes_sent += _size(data)

    async def receive(
        self,
        stream_id: int,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> str | bytes:
        """The next message received on ``stream_id`` (oldest first).

        Raises :class:`TimeoutError`, or :class:`UeCallError` when the call ends with nothing
        left to read on that stream.
        """
        inbox = self._inbox.setdefault(stream_id, collections.deque())

        def ready() -> bool:
            return bool(inbox) or self.state == "ended" or self._media_failed is not None

        await self._wait(ready, timeout, f"no message on stream {stream_id}")
        if not inbox:
            raise UeCallError(f"no message on stream {stream_id}: the call or its media ended")
        return inbox.popleft()

    def pending_messages(self, stream_id: int) -> int:
        """Messages received on ``stream_id`` and not read yet."""
        return len(self._inbox.get(stream_id, ()))

    def set_handler(self, stream_id: int, handler: MessageHandler | None) -> None:
        """Hand every message of ``stream_id`` to ``handler`` as it arrives instead of
        queueing it for :meth:`receive` (``None``: queue again). Messages already queued are
        handed over at once, oldest first, with the current time."""
        if handler is None:
            self._handlers.pop(stream_id, None)
            return
        self._handlers[stream_id] = handler
        inbox = self._inbox.get(stream_id)
        now = self._now()
        while inbox:
            self._deliver(handler, stream_id, inbox.popleft(), now)

    def _deliver(
        self, handler: MessageHandler, stream_id: int, data: str | bytes, at: float
    ) -> None:
        try:
            handler(data, at)
        except Exception as exc:  # a faulty handler must not break the call's media events
            log.exception("ue: handler of stream %d failed", stream_id)
            self.errors.append(f"handler of stream {stream_id}: {exc!r}")

    def buffered_amount(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` and not yet handed to SCTP (0 without media)."""
        session = self._session
        if session is None:
            return 0
        try:
            return session.buffered_amount(stream_id)
        except MediaError:
            return 0

    # -- fault injection ------------------------------------------------------------------

    def pause_media(self, *, lose: bool = False) -> None:
        """Stop reading the data channel association (a receiver that stalls): datagrams
        from the MF wait in the socket and the media path's bounded queue, SCTP acknowledges
        nothing, so the MF's send buffers for this UE fill up. SIP goes on. With ``lose``,
        the datagrams that arrive meanwhile are discarded instead (a radio outage: the path
        loses them), so what the MF sent during the pause reaches the UE only if the MF
        retransmits it. Undo with :meth:`resume_media` (hangup does it too)."""
        session = self._session
        if session is None or self._media_gate is not None:
            return
        gate = asyncio.Event()
        # Test-only reach into the session: its packet path's _recv is what the DTLS
        # transport awaits for every datagram (media/packet_path.py), so gating it stops the
        # whole association from reading, exactly like a stalled peer.
        path = session._path
        receive = path._recv

        async def gated() -> bytes:
            await gate.wait()
            return await receive()

        async def losing() -> bytes:
            while True:
                data = await receive()
                if gate.is_set():
                    return data

        path._recv = losing if lose else gated  # type: ignore[method-assign]
        self._media_gate = gate

    def resume_media(self) -> None:
        """Read the association again after :meth:`pause_media`."""
        gate, self._media_gate = self._media_gate, None
        if gate is not None:
            gate.set()

    @property
    def media_paused(self) -> bool:
        return self._media_gate is not None

    # -- re-INVITE ------------------------------------------------------------------------

    async def renegotiate(
        self,
        streams: Sequence[DcMap],
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> AnswerInfo:
        """Send a re-INVITE offering exactly ``streams`` (RFC 3261 14.1) on the same DTLS
        association; open the channels newly accepted and close those no longer accepted.

        Raises :class:`CallRejected` for a non-2xx answer (the call goes on unchanged).
        """
        if self.state != "confirmed" or self._dialog is None:
            raise UeCallError(f"re-INVITE on a call that is {self.state}")
        offer = self._next_offer(streams)
        dialog, request = self._dialog.next_request(
            "INVITE",
            contact=self._contact(),
            headers=(("Allow", _ALLOW), ("Content-Type", "application/sdp")),
        )
        self._dialog = dialog
        request = replace(request, body=serialize_sdp(offer).encode())
        async with asyncio.timeout(timeout):
            response = await self.sip.request(request)
        if response.status >= 300:
            raise CallRejected(response)
        self._ack(dialog, dialog.local_seq)
        contacts = response.headers.get_list("Contact")
        if contacts and self._dialog is not None:  # 12.2.1.2: a 2xx refreshes the target
            with contextlib.suppress(SipParseError):
                self._dialog = replace(self._dialog, remote_target=parse_name_addr(contacts[0]).uri)
        previous_offer, self.offer = self.offer, offer
        try:
            info = self._read_answer(response, streams)
        except UeCallError:
            self.offer = previous_offer
            raise
        self.offered = tuple(streams)
        self._apply_answer(info)
        return info

    async def add_streams(
        self,
        streams: Sequence[DcMap],
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> tuple[DcMap, ...]:
        """Offer the current streams plus ``streams`` in a re-INVITE; returns those of
        ``streams`` the MF accepted (their channels open shortly, see
        :meth:`wait_channels_open`)."""
        current = [d for d in self.offered if d.stream_id in set(self.accepted_ids)]
        info = await self.renegotiate([*current, *streams], timeout)
        wanted = {d.stream_id for d in streams}
        return tuple(d for d in info.accepted if d.stream_id in wanted)

    # -- requests from the MF -------------------------------------------------------------

    def _on_request(self, request: Request) -> Response:
        assert self._dialog is not None
        self._dialog = self._dialog.receive(request)  # SipError(500) for an old CSeq
        method = request.method
        headers = [("Contact", self._contact()), ("Allow", _ALLOW)]
        if method == "BYE":
            self._ended("mf", request.headers.get("Reason") or "BYE from the MF")
            return make_response(request, 200, headers=headers)
        if method == "UPDATE" and not request.body:
            return make_response(request, 200, headers=headers)  # RFC 4028 refresh
        if method in ("UPDATE", "INVITE"):
            raise SipError(488, "The Test UE Does Not Take Offers")
        if method == "OPTIONS":
            return make_response(request, 200, headers=headers)
        raise SipError(405, headers=(("Allow", _ALLOW),))

    def _ended(self, by: Literal["ue", "mf"], reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.ended_by = by
        self.end_reason = reason
        self.timing.ended = self._now()
        self.resume_media()
        if self._sip is not None and self._dialog is not None:
            self._sip.remove_dialog(self._dialog.id)
        session, self._session = self._session, None
        if session is not None:
            task = asyncio.get_running_loop().create_task(session.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.rtp_audio is not None:
            audio_task = asyncio.get_running_loop().create_task(self.rtp_audio.close())
            self._tasks.add(audio_task)
            audio_task.add_done_callback(self._tasks.discard)
        if self.rtp_video is not None:
            video_task = asyncio.get_running_loop().create_task(self.rtp_video.close())
            self._tasks.add(video_task)
            video_task.add_done_callback(self._tasks.discard)
        self._changed.set()

    async def wait_ended(
        self,
        timeout: float = 10.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> str:
        """Wait for the call to end (a BYE from the MF); returns the reason."""
        await self._wait(lambda: self.state == "ended", timeout, "the call did not end")
        return self.end_reason

    # -- teardown -------------------------------------------------------------------------

    async def _bye(
        self,
        timeout: float,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> None:
        if self._dialog is None or self._sip is None or self.state != "confirmed":
            return
        dialog, bye = self._dialog.next_request("BYE", contact=self._contact())
        self._dialog = dialog
        self._ended("ue", "BYE from the UE")
        try:
            async with asyncio.timeout(timeout):
                response = await self._sip.request(bye)
        except (TimeoutError, ConnectionError) as exc:
            self.errors.append(f"BYE: {exc!r}")
            return
        self.bye_status = response.status
        if response.status >= 300:
            self.errors.append(f"BYE answered {response.status} {response.reason}")

    async def hangup(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
    ) -> None:
        """End the call (BYE unless the MF ended it), close the media and the SIP socket.
        Idempotent; never raises for a failed BYE (see :attr:`errors`)."""
        if self._closed:
            return
        if self.state == "confirmed":
            await self._bye(timeout)
        await self._release("hangup")

    async def _release(self, reason: str) -> None:
        if self._closed:
            return
        self._ended("ue", reason)
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        cancelling = self._cancelling
        if cancelling is not None and not cancelling.done():
            # the INVITE was answered (487) before the CANCEL: let the CANCEL's answer come
            await asyncio.wait({cancelling}, timeout=_CANCEL_ANSWER_WAIT)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._sip is not None and self._owns_sip:
            await self._sip.close()

    # -- report ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """The call was answered, every accepted channel opened, and nothing went wrong."""
        return (
            self.final_status is not None
            and 200 <= self.final_status < 300
            and self.timing.channels_open is not None
            and not self.errors
        )

    def summary(self) -> dict[str, object]:
        """A JSON-ready report: setup figures, channels, counters, errors."""
        timing = self.timing
        return {
            "ok": self.ok,
            "call_id": self.call_id,
            "target": self.target_uri,
            "transport": self.transport,
            "ice": self.ice,
            "status": self.final_status,
            "answer_seconds": _round(timing.answer_seconds),
            "connect_seconds": _round(timing.connect_seconds),
            "setup_seconds": _round(timing.setup_seconds),
            "channels_accepted": len(self.accepted),
            "channels_opened": sum(1 for c in self.channels.values() if c.opened_after is not None),
            "rejected_streams": list(self.rejected_ids),
            "channels": {str(sid): stats.as_dict() for sid, stats in sorted(self.channels.items())},
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
            "bye_status": self.bye_status,
            "errors": list(self.errors),
        }


def _retrieve(future: asyncio.Future[Response | None]) -> None:
    """Mark the CANCEL's outcome as seen: whoever waits on it reads it, and nobody may."""
    if not future.cancelled():
        future.exception()
