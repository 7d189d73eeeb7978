"""Call media when the MF is the offerer: the second leg of a two-leg call (``ua/b2bua.py``).

:class:`CallOfferFactory` is the user agent's :class:`~avatar_mf.ua.media_seam.OfferFactory`.
For each outgoing leg it allocates a data channel endpoint (``media.endpoint``: DTLS over plain
UDP, ``a=setup:actpass``, as an IMS network offers) and writes the MF's offer (TS 26.114 clause
6.2.10, RFC 8841, RFC 8864, RFC 8842): one ``m=application ... UDP/DTLS/SCTP
webrtc-datachannel`` line with ``a=setup``, ``a=fingerprint``, ``a=tls-id``, ``a=sctp-port``,
``a=max-message-size`` and one ``a=dcmap`` per stream of :data:`OFFER_STREAMS` (the bootstrap
channels 0 and 10, the avatar metadata, animation and transfer channels).

When the node serves audio the offer starts with an IMS-style audio m-line
(``calls.audio.CallAudio.offer``: RTP/AVP, the codec of the first leg's answer first so that
the legs can be forwarded untouched, then every codec the MF serves, telephone-event,
rtcp-mux); the answer's choice starts the stream on the offered port, a refusal (port 0)
releases it and the call goes on with its data channels.

The answer (RFC 3264 section 6, RFC 8864 section 6) must keep the data channel m-line with a
non-zero port, ``a=setup:active`` or ``passive`` (RFC 4145 4.1), and accept only offered
streams; then the endpoint gets the remote parameters and, once the ACK is sent, starts.
From there the session is a :class:`~avatar_mf.calls.call_media.CallMediaSession` like any
other: channel services by subprotocol, traffic counters, re-offers from UE2 answered on the
live association (the exchange is kept as the "previous" one: UE2's description and the
MF's, with the role the answer gave it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Final

from avatar_mf.calls.call_media import CallMediaSession, CallSessionFactory
from avatar_mf.media.errors import MediaError
from avatar_mf.media.params import LocalParams
from avatar_mf.media.sdp_params import remote_params, stream_spec
from avatar_mf.sdp.audio import AudioPlan, plan_audio, render_audio_line
from avatar_mf.sdp.datachannel import (
    FORMAT,
    PROTO,
    DcMap,
    format_dcmap,
    parse_datachannel_offer,
)
from avatar_mf.sdp.errors import SdpError
from avatar_mf.sdp.model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    parse_sdp,
    serialize_sdp,
)
from avatar_mf.sdp.offer_answer import Negotiated
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.feature_tags import avatar_feature_tags
from avatar_mf.ua.media_seam import CallInfo, FailureCallback, OfferSession

__all__ = ["OFFER_STREAMS", "CallOfferFactory", "CallOfferSession", "offer_description"]

#: The streams the MF offers an outgoing leg: the bootstrap channels 0 and 10 (HTTP, TS 26.114
#: 6.2.10), the avatar metadata and animation channels (TS 26.264) and the avatar transfer
#: channel.
OFFER_STREAMS: Final[tuple[DcMap, ...]] = (
    DcMap(0, subprotocol="http"),
    DcMap(10, subprotocol="http"),
    DcMap(1000, label="avatar-meta", subprotocol="3gpp-ar-metadata"),
    DcMap(1002, label="avatar-anim-1", subprotocol="3gpp-ar-animation"),
    DcMap(1004, label="avatar-transfer", subprotocol="avatar-mf-transfer"),
)


def _addrtype(address: str) -> str:
    return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"


def offer_description(
    local: LocalParams,
    streams: tuple[DcMap, ...],
    *,
    session_id: int,
    session_version: int,
    setup: str | None = None,
    audio: MediaDescription | None = None,
) -> SessionDescription:
    """The MF's data channel description for ``local`` carrying ``streams`` (``setup``
    overrides ``local.setup``: the role an answer gave the MF), after ``audio`` when given."""
    attrs: list[Attribute] = [Attribute("setup", setup or local.setup)]
    attrs.extend(Attribute("fingerprint", f"{name} {value}") for name, value in local.fingerprints)
    attrs.append(Attribute("tls-id", local.tls_id))
    attrs.append(Attribute("sctp-port", str(local.sctp_port)))
    attrs.append(Attribute("max-message-size", str(local.max_message_size)))
    if local.ice is not None:
        attrs.append(Attribute("ice-ufrag", local.ice.ufrag))
        attrs.append(Attribute("ice-pwd", local.ice.pwd))
        attrs.extend(Attribute("candidate", c) for c in local.ice.candidates)
        attrs.append(Attribute("end-of-candidates"))
    attrs.extend(Attribute("dcmap", format_dcmap(d)) for d in streams)
    addrtype = _addrtype(local.address)
    connection = Connection("IN", addrtype, local.address)
    media = MediaDescription(
        media="application",
        port=local.port,
        proto=PROTO,
        formats=(FORMAT,),
        connections=(connection,),
        attrs=tuple(attrs),
    )
    return SessionDescription(
        origin=Origin(
            "avatar-mf", str(session_id), str(session_version), "IN", addrtype, local.address
        ),
        session_name="-",
        connection=connection,
        media=(media,) if audio is None else (audio, media),
    )


def _refuse(detail: str) -> SipError:
    return SipError(488, "Unusable Answer", headers=(("Warning", f'304 avatar-mf "{detail}"'),))


class CallOfferSession(CallMediaSession):
    """The media of a leg the MF called out on (see the module doc)."""

    def __init__(
        self, factory: CallSessionFactory, call: CallInfo, on_failure: FailureCallback
    ) -> None:
        super().__init__(factory, call, on_failure)
        self.offer: SessionDescription | None = None
        self.offered: tuple[DcMap, ...] = ()
        self._audio_offer: MediaDescription | None = None

    @property
    def local_sdp(self) -> bytes:
        if self.negotiated is not None:
            return serialize_sdp(self.negotiated.answer).encode()
        assert self.offer is not None
        return serialize_sdp(self.offer).encode()

    async def make_offer(self, streams: tuple[DcMap, ...]) -> None:
        try:
            self.dc = await self._factory.media.create_offer(
                [stream_spec(d) for d in streams], ice=False, on_event=self._on_event
            )
        except MediaError as exc:
            raise SipError(exc.status_hint, str(exc)[:100]) from exc
        self.offered = streams
        self._version += 1
        self._audio_offer = await self.audio.offer() if self.audio is not None else None
        self.offer = offer_description(
            self.dc.local,
            streams,
            session_id=self._session_id,
            session_version=self._version,
            audio=self._audio_offer,
        )

    async def accept_answer(self, answer: bytes, contact: str = "") -> None:
        assert self.offer is not None and self.dc is not None
        if not answer:
            raise _refuse("no SDP answer")
        try:
            sdp = parse_sdp(answer)
        except SdpError as exc:
            raise _refuse(f"bad SDP answer: {exc}") from exc
        if len(sdp.media) != len(self.offer.media):
            raise _refuse("the answer's m-lines differ from the offer's (RFC 3264 6)")
        dc_index = len(sdp.media) - 1
        if sdp.media[dc_index].port == 0:
            raise _refuse("the data channel m-line was refused")
        try:
            dc = parse_datachannel_offer(sdp, dc_index)
            remote = remote_params(dc)
        except (SdpError, ValueError) as exc:
            raise _refuse(f"bad data channel m-line: {exc}") from exc
        if dc.setup not in ("active", "passive"):
            raise _refuse(f"a=setup:{dc.setup} in an answer (RFC 4145 4.1)")
        offered = {d.stream_id for d in self.offered}
        if any(d.stream_id not in offered for d in dc.dcmaps):
            raise _refuse("the answer accepts streams that were not offered")
        try:
            await self.dc.set_remote(remote)
        except MediaError as exc:
            raise _refuse(str(exc)[:100]) from exc
        if contact:
            self.avatar_tags = avatar_feature_tags(contact)
        accepted = {d.stream_id for d in dc.dcmaps}
        audio_line = await self._accept_audio(sdp)
        local = offer_description(
            self.dc.local,
            tuple(d for d in self.offered if d.stream_id in accepted),
            session_id=self._session_id,
            session_version=self._version,
            setup="passive" if dc.setup == "active" else "active",
            audio=audio_line,
        )
        # The exchange as a re-offer from UE2 will be compared with: its description, ours.
        self.negotiated = Negotiated(sdp, replace(local, origin=self.offer.origin))

    async def _accept_audio(self, answer: SessionDescription) -> MediaDescription | None:
        """Start (or release) the offered audio stream from the answer's audio m-line; the
        MF's own description of it afterwards (the chosen codec only, or port 0)."""
        offered = self._audio_offer
        plane = self._factory.audio
        if offered is None or self.audio is None or plane is None:
            return None
        md = answer.media[0]
        plan: AudioPlan | None = None
        if md.port != 0 and md.media.lower() == "audio":
            first = self.audio.room_format()
            outcome = plan_audio(
                answer,
                0,
                plane.caps,
                previous_codec=(first[0].name, first[0].clock_rate) if first else None,
            )
            plan = outcome if isinstance(outcome, AudioPlan) else None
        port = offered.port
        await self.audio.accept(plan)
        if plan is None or not self.audio.live:
            return MediaDescription("audio", 0, offered.proto, offered.formats[:1])
        self._audio_ports = {0: port}
        return render_audio_line(
            plan, port=port, address=offered.connection.address if offered.connection else None
        )


class CallOfferFactory:
    """Makes :class:`CallOfferSession` objects (the UA's OfferFactory), sharing the room
    factory's endpoint, services, counters and session list."""

    def __init__(
        self, factory: CallSessionFactory, streams: tuple[DcMap, ...] = OFFER_STREAMS
    ) -> None:
        self.factory = factory
        self.streams = streams

    async def create_offer(self, call: CallInfo, on_failure: FailureCallback) -> OfferSession:
        session = CallOfferSession(self.factory, call, on_failure)
        try:
            await session.make_offer(self.streams)
        except BaseException:
            await session.close()
            raise
        self.factory.sessions.add(session)
        return session
