"""SDP answers to IMS data channel offers (RFC 3264 offer/answer model).

Two phases, both pure:

1. :func:`plan_answer` decides from the offer alone (and, for a re-offer, the previous
   exchange): which m-line carries the data channel, the parsed
   :class:`~avatar_mf.sdp.datachannel.DataChannelOffer`, which streams are accepted or rejected
   and which are new, the local DTLS role, whether a new DTLS association is needed. It raises
   :class:`~avatar_mf.sdp.errors.SdpNotAcceptable` (488) when nothing is acceptable.
2. The caller creates (or keeps) the local DTLS/SCTP endpoint with ``plan.datachannel.local_setup``
   and renders the answer with :func:`render_answer` from the endpoint's real port, fingerprint
   and ICE parameters (:class:`DataChannelAnswerParams`).

:func:`build_answer` runs both for callers that know the endpoint parameters up front.

Rules applied (RFC clauses):

* RFC 3264 section 6: the answer has exactly as many m-lines as the offer, in the same order,
  with the same media types; ``t=`` is copied from the offer. A rejected m-line has port 0,
  the offer's proto and its first format, and no attribute except ``a=mid`` (echoed when the
  offer has one, RFC 5888 section 9.1). An m-line that the offer already disables (port 0)
  stays port 0.
* Video m-lines (``RTP/AVP``, ``RTP/AVPF``, no ICE) are planned by :mod:`avatar_mf.sdp.video`
  when the policy carries the MF's video capabilities (H.264 RFC 6184 8.2.2, VP8 RFC 7741,
  rtcp-fb RFC 4585/5104); otherwise, or with nothing usable, port 0.
* Audio m-lines (``RTP/AVP``, ``RTP/AVPF``, no ICE) are planned by :mod:`avatar_mf.sdp.audio`
  when the policy carries the MF's audio capabilities (RFC 3264 6.1, RFC 3551, RFC 4867 8.3,
  RFC 5761); one without a usable codec gets port 0 and the call goes on with the rest. An
  offer with an accepted audio m-line and no data channel is an audio-only call (no 488).
* At most one data channel m-line is accepted: the first acceptable one (for a re-offer, the
  one accepted before is tried first). Other data channel m-lines get port 0.
* RFC 4145 section 4.1 / RFC 8842 section 5.3: ``a=setup`` in the answer is ``passive`` to
  ``active``, ``active`` to ``passive``, and a policy choice to ``actpass``; never ``actpass``.
  The default choice: ``passive`` for an offer without ICE (the IMS path: the UE starts DTLS,
  so nothing is built for a peer that never does, and the MF follows the UE's ClientHello
  source through NATs, RFC 8261 4), ``active`` with ICE (RFC 5763 5 recommends it: the
  handshake starts half a round trip sooner, and an ICE peer always speaks DTLS).
  ``holdconn`` offers are rejected (port 0). In a re-offer that keeps the DTLS association
  the previous role is kept.
* RFC 8842 section 5: the answer always carries the MF's own ``a=tls-id``: a new value for a new
  DTLS association, the previous one when the association is kept. A re-offer keeps the
  association when its tls-id equals the previous offer's; without tls-ids, when the remote
  fingerprints (and, without ICE, the remote address and port) are unchanged; and only when the
  offered setup role is compatible with the MF's previous role.
* RFC 8864 section 6: accepted ``a=dcmap`` lines are echoed verbatim, rejected ones are left
  out. A stream id mapped twice is rejected (both lines) in an initial offer; a re-offer doing
  so is refused (488, warn-code 399) rather than closing the live stream. ``a=dcsa`` lines of
  accepted streams are echoed when the embedded attribute is in ``AnswerPolicy.echo_dcsa``
  (default: ``3gpp-req-app``), otherwise dropped.
  ``a=3gpp-bdc-used-by`` is not echoed. A dcmap removed by a re-offer closes its stream.
* RFC 8839: ICE attributes appear in the answer only when the offer had ICE (``ice-lite`` at
  session level, the others in the data channel m-line).
* RFC 8843: a session-level ``a=group:BUNDLE`` is written only if the offer had one, with the
  accepted data channel mid first and the WebRTC audio and video mids bundled with it
  (:mod:`avatar_mf.sdp.webrtc_audio`, :mod:`avatar_mf.sdp.webrtc_video`:
  ``UDP/TLS/RTP/SAVPF`` m-lines on the data channel's transport, also when offered
  ``bundle-only``; payload types unique across the group, RFC 8843 section 9.2). Other
  ``bundle-only`` m-lines are treated as disabled.
* RFC 3264 section 8: a re-offer may not remove m-lines (488 if it has fewer than the previous
  answer). A re-offer that disables the data channel and offers nothing else acceptable is
  answered with every m-line at port 0 instead of 488; an initial offer gets 488.
* RFC 3264 section 8: ``o=`` session id and version come from the caller; see
  :func:`versioned_answer` to keep the version when a re-answer is unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from avatar_mf.sdp.audio import (
    AudioCapabilities,
    AudioPlan,
    AudioRejection,
    plan_audio,
    previous_codec,
    render_audio_line,
)
from avatar_mf.sdp.datachannel import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_SCTP_PORT,
    DEFAULT_STREAM_POLICY,
    PROTO,
    DataChannelOffer,
    DcMap,
    DcSa,
    Fingerprint,
    IceParams,
    LocalSetup,
    RejectedStream,
    StreamPolicy,
    accept_streams,
    format_dcsa,
    format_fingerprint,
    generate_tls_id,
    is_tls_id,
    parse_datachannel_offer,
    parse_dcmap,
)
from avatar_mf.sdp.errors import (
    WARN_MEDIA_TYPE_NOT_AVAILABLE,
    WARN_MISCELLANEOUS,
    SdpError,
    SdpNotAcceptable,
)
from avatar_mf.sdp.model import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
)
from avatar_mf.sdp.video import (
    VideoCapabilities,
    VideoPlan,
    VideoRejection,
    plan_video,
    previous_video_codec,
    render_video_line,
)
from avatar_mf.sdp.webrtc_audio import is_webrtc_audio, plan_webrtc_audio
from avatar_mf.sdp.webrtc_video import plan_webrtc_video


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """How the MF answers; a frozen value that config can tune.

    ``actpass_setup`` is the role taken when the offer says ``actpass``;
    ``actpass_setup_without_ice`` overrides it for offers without ICE (``None``: same;
    ``passive`` by default, see the module docstring).
    ``echo_dcsa`` names the ``a=dcsa`` embedded attributes echoed for accepted streams.
    """

    streams: StreamPolicy = DEFAULT_STREAM_POLICY
    actpass_setup: LocalSetup = "active"
    actpass_setup_without_ice: LocalSetup | None = "passive"
    echo_dcsa: frozenset[str] = frozenset({"3gpp-req-app"})
    #: The codecs the MF can serve for audio m-lines; ``None``: audio is answered port 0.
    audio: AudioCapabilities | None = field(default=None, compare=False, hash=False)
    #: The codecs the MF can serve for video m-lines; ``None``: video is answered port 0.
    video: VideoCapabilities | None = field(default=None, compare=False, hash=False)

    def setup_for_actpass(self, *, has_ice: bool) -> LocalSetup:
        if not has_ice and self.actpass_setup_without_ice is not None:
            return self.actpass_setup_without_ice
        return self.actpass_setup


DEFAULT_ANSWER_POLICY: Final = AnswerPolicy()


@dataclass(frozen=True, slots=True)
class Negotiated:
    """One completed exchange: the remote offer as received and the local answer as sent.
    Keep it for the next re-offer (``plan_answer(..., previous=...)``)."""

    offer: SessionDescription
    answer: SessionDescription


@dataclass(frozen=True, slots=True)
class MediaLinePlan:
    """The fate of one offered m-line. ``reason`` explains a rejection; ``warn_code`` is the
    RFC 3261 Warning code that would describe it."""

    index: int
    media: str
    accepted: bool
    reason: str | None = None
    warn_code: int | None = None


@dataclass(frozen=True, slots=True)
class StreamChanges:
    """How the accepted streams differ from the previous exchange.

    ``opened``: to open now (new ids, or every stream of a new DTLS association);
    ``kept``: already open and unchanged; ``closed``: open before and not any more (removed
    by the offerer, no longer accepted, or part of a replaced association). A stream whose
    parameters changed is both closed (old) and opened (new).
    """

    opened: tuple[DcMap, ...] = ()
    kept: tuple[DcMap, ...] = ()
    closed: tuple[DcMap, ...] = ()


@dataclass(frozen=True, slots=True)
class DataChannelPlan:
    """The accepted data channel m-line.

    ``local_setup`` is the role the local endpoint must take (``active`` = DTLS client).
    ``new_association`` says whether a new DTLS/SCTP association is needed; when it is
    False, ``previous_tls_id`` is the MF's tls-id to keep. ``dcmap_values`` are the offered
    dcmap attribute values echoed in the answer, ``dcsas`` the dcsa lines echoed.
    """

    remote: DataChannelOffer
    accepted: tuple[DcMap, ...]
    rejected: tuple[RejectedStream, ...]
    dcmap_values: tuple[str, ...]
    dcsas: tuple[DcSa, ...]
    local_setup: LocalSetup
    new_association: bool
    previous_tls_id: str | None
    changes: StreamChanges

    @property
    def index(self) -> int:
        return self.remote.index

    @property
    def needs_ice(self) -> bool:
        """True when the offer has ICE: the answer must carry local ICE parameters."""
        return self.remote.ice is not None

    @property
    def dtls_role(self) -> Literal["client", "server"]:
        return "client" if self.local_setup == "active" else "server"


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """Everything decided about an answer before the local endpoint exists."""

    offer: SessionDescription
    lines: tuple[MediaLinePlan, ...]
    datachannel: DataChannelPlan | None
    bundle_mids: tuple[str, ...] | None = None
    previous: Negotiated | None = None
    #: The accepted audio m-lines (IMS style), in m-line order.
    audio: tuple[AudioPlan, ...] = ()
    #: The accepted video m-lines (IMS style), in m-line order.
    video: tuple[VideoPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class DataChannelAnswerParams:
    """The local endpoint, created after :func:`plan_answer`, as the answer describes it.

    ``port`` is the local UDP port (with ICE: of the default candidate). ``tls_id`` is the
    MF's tls-id for a new association (``None``: generate one); for a kept association the
    previous value is used. ``ice`` is required when the plan says ``needs_ice`` and ignored
    otherwise. ``bandwidths`` ``None`` echoes the offer's media-level ``b=`` lines.
    """

    port: int
    fingerprints: tuple[Fingerprint, ...]
    tls_id: str | None = None
    sctp_port: int = DEFAULT_SCTP_PORT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ice: IceParams | None = None
    bandwidths: tuple[Bandwidth, ...] | None = None


@dataclass(frozen=True, slots=True)
class AnswerResult:
    sdp: SessionDescription
    plan: AnswerPlan

    @property
    def negotiated(self) -> Negotiated:
        return Negotiated(self.plan.offer, self.sdp)


# --------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True, slots=True)
class _Previous:
    media_count: int
    dc_index: int | None
    remote: DataChannelOffer | None
    local_setup: LocalSetup | None
    local_tls_id: str | None
    accepted: tuple[DcMap, ...]


def _previous_state(previous: Negotiated) -> _Previous:
    answer = previous.answer
    index = next(
        (
            i
            for i, m in enumerate(answer.media)
            if m.media.lower() == "application" and m.port != 0 and m.proto.upper() == PROTO
        ),
        None,
    )
    if index is None:
        return _Previous(len(answer.media), None, None, None, None, ())
    md = answer.media[index]
    setup_value = (md.attribute_value("setup") or "").strip().lower()
    local_setup: LocalSetup | None = (
        "active" if setup_value == "active" else "passive" if setup_value == "passive" else None
    )
    remote: DataChannelOffer | None
    try:
        remote = parse_datachannel_offer(previous.offer, index)
        accepted = tuple(parse_dcmap(a.value or "") for a in md.attributes("dcmap"))
    except (SdpError, IndexError):
        remote, accepted = None, ()
    return _Previous(
        media_count=len(answer.media),
        dc_index=index,
        remote=remote,
        local_setup=local_setup,
        local_tls_id=md.attribute_value("tls-id"),
        accepted=accepted,
    )


def _same_association(before: DataChannelOffer, now: DataChannelOffer) -> bool:
    if before.tls_id is not None and now.tls_id is not None:
        return before.tls_id == now.tls_id
    if set(before.fingerprints) != set(now.fingerprints):
        return False
    if now.ice is None:
        return (before.remote_address, before.remote_port) == (now.remote_address, now.remote_port)
    return True


def _role_compatible(offered: str, local: LocalSetup) -> bool:
    return (
        offered == "actpass"
        or (offered == "active" and local == "passive")
        or (offered == "passive" and local == "active")
    )


def _diff_streams(
    accepted: tuple[DcMap, ...], before: tuple[DcMap, ...], new_association: bool
) -> StreamChanges:
    if new_association:
        return StreamChanges(opened=accepted, closed=before)
    old: Mapping[int, DcMap] = {d.stream_id: d for d in before}
    now_ids = {d.stream_id for d in accepted}
    opened: list[DcMap] = []
    kept: list[DcMap] = []
    closed: list[DcMap] = [d for d in before if d.stream_id not in now_ids]
    for d in accepted:
        prior = old.get(d.stream_id)
        if prior is None:
            opened.append(d)
        elif prior == d:
            kept.append(d)
        else:
            closed.append(prior)
            opened.append(d)
    return StreamChanges(tuple(opened), tuple(kept), tuple(closed))


def _plan_datachannel(
    remote: DataChannelOffer, policy: AnswerPolicy, prev: _Previous | None
) -> DataChannelPlan:
    if prev is not None:
        seen: set[int] = set()
        for dcmap in remote.dcmaps:
            if dcmap.stream_id in seen:
                # In an initial offer both are rejected (accept_streams); in a re-offer that
                # would silently close a live channel (e.g. bootstrap): refuse the re-offer.
                raise SdpNotAcceptable(
                    f"re-offer maps stream id {dcmap.stream_id} more than once (RFC 8864 "
                    "section 5.1: one a=dcmap per stream)",
                    warn_code=WARN_MISCELLANEOUS,
                    line=remote.media.line,
                )
            seen.add(dcmap.stream_id)
    accepted, rejected = accept_streams(remote.dcmaps, policy=policy.streams)
    accepted_ids = {d.stream_id for d in accepted}

    new_association = True
    local_setup: LocalSetup
    if (
        prev is not None
        and prev.dc_index == remote.index
        and prev.remote is not None
        and prev.local_setup is not None
        and _same_association(prev.remote, remote)
        and _role_compatible(remote.setup, prev.local_setup)
    ):
        new_association = False
        local_setup = prev.local_setup
    elif remote.setup == "active":
        local_setup = "passive"
    elif remote.setup == "passive":
        local_setup = "active"
    else:
        local_setup = policy.setup_for_actpass(has_ice=remote.ice is not None)

    dcmap_values = tuple(
        attr.value or ""
        for dcmap, attr in zip(remote.dcmaps, remote.media.attributes("dcmap"), strict=True)
        if dcmap.stream_id in accepted_ids
    )
    echo = {name.lower() for name in policy.echo_dcsa}
    dcsas = tuple(s for s in remote.dcsas if s.stream_id in accepted_ids and s.name.lower() in echo)
    before = prev.accepted if prev is not None and prev.dc_index is not None else ()
    return DataChannelPlan(
        remote=remote,
        accepted=accepted,
        rejected=rejected,
        dcmap_values=dcmap_values,
        dcsas=dcsas,
        local_setup=local_setup,
        new_association=new_association,
        previous_tls_id=None if new_association or prev is None else prev.local_tls_id,
        changes=_diff_streams(accepted, before, new_association),
    )


def _bundle_mids(
    offer: SessionDescription,
    mid: str | None,
    audio: Iterable[AudioPlan | VideoPlan] = (),
) -> tuple[str, ...] | None:
    """The answer's BUNDLE group: the data channel's mid and the mids of the WebRTC audio
    and video m-lines bundled with it, in the offer's order (the offerer BUNDLE-tag, its first mid,
    stays the answerer's when accepted: RFC 8843 section 7.3.1)."""
    if mid is None:
        return None
    for attr in offer.attributes("group"):
        fields = (attr.value or "").split()
        if not fields:
            continue  # "a=group" without semantics (RFC 5888 requires them): no group
        semantics, *mids = fields
        if semantics.upper() == "BUNDLE" and mid in mids:
            bundled = {a.mid for a in audio if a.bundled} | {mid}
            return tuple(m for m in mids if m in bundled)
    return None


def plan_answer(
    offer: SessionDescription,
    policy: AnswerPolicy = DEFAULT_ANSWER_POLICY,
    *,
    previous: Negotiated | None = None,
) -> AnswerPlan:
    """Decide the answer to ``offer`` (pure; see the module docstring for the rules).

    Raises :class:`SdpError` (400) for a malformed data channel m-line and
    :class:`SdpNotAcceptable` (488, with a Warning) when nothing can be accepted.
    """
    prev = _previous_state(previous) if previous is not None else None
    if prev is not None and len(offer.media) < prev.media_count:
        raise SdpNotAcceptable(
            f"re-offer has {len(offer.media)} m-lines, the previous answer had "
            f"{prev.media_count}: m-lines cannot be removed (RFC 3264 section 8)",
            warn_code=WARN_MISCELLANEOUS,
        )

    candidates = [
        i for i, md in enumerate(offer.media) if md.media.lower() == "application" and md.port != 0
    ]
    if prev is not None and prev.dc_index in candidates:
        candidates.remove(prev.dc_index)
        candidates.insert(0, prev.dc_index)

    failures: dict[int, SdpNotAcceptable] = {}
    dc_plan: DataChannelPlan | None = None
    for index in candidates:
        try:
            remote = parse_datachannel_offer(offer, index)
        except SdpNotAcceptable as err:
            failures[index] = err
            continue
        if remote.setup == "holdconn":
            failures[index] = SdpNotAcceptable(
                f"m-line {index + 1}: a=setup:holdconn (RFC 4145 section 4) is not supported",
                warn_code=WARN_MISCELLANEOUS,
                line=remote.media.line,
            )
            continue
        dc_plan = _plan_datachannel(remote, policy, prev)
        break

    audio_plans: dict[int, AudioPlan] = {}
    audio_rejections: dict[int, AudioRejection] = {}
    for index, md in enumerate(offer.media):
        if md.media.lower() != "audio" or policy.audio is None:
            continue
        webrtc = is_webrtc_audio(md.proto)
        if md.port == 0 and not (webrtc and md.has_attribute("bundle-only")):
            continue
        before = previous_codec(previous.answer, index) if previous is not None else None
        if webrtc:
            outcome = plan_webrtc_audio(
                offer,
                index,
                policy.audio,
                datachannel_mid=dc_plan.remote.mid if dc_plan is not None else None,
                previous_codec=before,
            )
        else:
            outcome = plan_audio(offer, index, policy.audio, previous_codec=before)
        if isinstance(outcome, AudioPlan):
            audio_plans[index] = outcome
        else:
            audio_rejections[index] = outcome

    video_plans: dict[int, VideoPlan] = {}
    video_rejections: dict[int, VideoRejection] = {}
    bundled_pts = frozenset(pt for a in audio_plans.values() if a.bundled for pt in a.payload_types)
    for index, md in enumerate(offer.media):
        if md.media.lower() != "video" or policy.video is None:
            continue
        webrtc = is_webrtc_audio(md.proto)  # the same DTLS-SRTP profiles
        if md.port == 0 and not (webrtc and md.has_attribute("bundle-only")):
            continue
        before_video = previous_video_codec(previous.answer, index) if previous else None
        video: VideoPlan | VideoRejection
        if webrtc:
            video = plan_webrtc_video(
                offer,
                index,
                policy.video,
                datachannel_mid=dc_plan.remote.mid if dc_plan is not None else None,
                taken_payload_types=bundled_pts,
                previous_codec=before_video,
            )
        else:
            video = plan_video(offer, index, policy.video, previous_codec=before_video)
        if isinstance(video, VideoPlan):
            video_plans[index] = video
        else:
            video_rejections[index] = video
    media_plans = {**audio_plans, **video_plans}
    rejections: dict[int, AudioRejection | VideoRejection] = {
        **audio_rejections,
        **video_rejections,
    }

    if dc_plan is None and not media_plans and (prev is None or failures):
        if failures:
            first = failures[min(failures)]
            raise SdpNotAcceptable(
                f"no acceptable data channel: {first.detail}",
                warn_code=first.warning.code,
                line=first.line,
            )
        kinds = ", ".join(md.media for md in offer.media) or "no m-lines"
        raise SdpNotAcceptable(
            f"nothing acceptable in the offer ({kinds}): the MF accepts only a data channel "
            f"m=application <port> {PROTO} webrtc-datachannel (audio/video not handled)",
            warn_code=WARN_MEDIA_TYPE_NOT_AVAILABLE,
        )

    lines: list[MediaLinePlan] = []
    for index, md in enumerate(offer.media):
        if dc_plan is not None and index == dc_plan.index or index in media_plans:
            lines.append(MediaLinePlan(index, md.media, True))
        elif index in rejections:
            lines.append(
                MediaLinePlan(
                    index,
                    md.media,
                    False,
                    rejections[index].reason,
                    WARN_MEDIA_TYPE_NOT_AVAILABLE,
                )
            )
        elif md.port == 0:
            lines.append(
                MediaLinePlan(index, md.media, False, "disabled by the offer (port 0)", None)
            )
        elif index in failures:
            failure = failures[index]
            lines.append(
                MediaLinePlan(index, md.media, False, failure.detail, failure.warning.code)
            )
        elif md.media.lower() == "application":
            lines.append(
                MediaLinePlan(
                    index,
                    md.media,
                    False,
                    "only one data channel m-line is accepted per session",
                    WARN_MEDIA_TYPE_NOT_AVAILABLE,
                )
            )
        else:
            lines.append(
                MediaLinePlan(
                    index,
                    md.media,
                    False,
                    f"{md.media} is not handled by the MF (rejected with port 0)",
                    WARN_MEDIA_TYPE_NOT_AVAILABLE,
                )
            )
    return AnswerPlan(
        offer=offer,
        lines=tuple(lines),
        datachannel=dc_plan,
        bundle_mids=_bundle_mids(
            offer, dc_plan.remote.mid, [*audio_plans.values(), *video_plans.values()]
        )
        if dc_plan
        else None,
        previous=previous,
        audio=tuple(audio_plans[i] for i in sorted(audio_plans)),
        video=tuple(video_plans[i] for i in sorted(video_plans)),
    )


# --------------------------------------------------------------------------------------------
# Rendering


def _addrtype(local_address: str) -> tuple[str, str]:
    try:
        ip = ipaddress.ip_address(local_address)
    except ValueError:
        raise ValueError(f"local_address must be an IP literal, got {local_address!r}") from None
    return ("IP6" if ip.version == 6 else "IP4"), str(ip)


def _rejected_line(md: MediaDescription) -> MediaDescription:
    mid = md.attribute_value("mid")
    return MediaDescription(
        media=md.media,
        port=0,
        proto=md.proto,
        formats=md.formats[:1],
        attrs=(Attribute("mid", mid),) if mid is not None else (),
    )


def _local_tls_id(dc: DataChannelPlan, params: DataChannelAnswerParams) -> str:
    if not dc.new_association and dc.previous_tls_id is not None:
        if params.tls_id is not None and params.tls_id != dc.previous_tls_id:
            raise ValueError(
                "the DTLS association is kept: the answer must repeat the previous tls-id "
                f"{dc.previous_tls_id!r} (RFC 8842 section 5.3), got {params.tls_id!r}"
            )
        return dc.previous_tls_id
    tls_id = params.tls_id if params.tls_id is not None else generate_tls_id()
    if not is_tls_id(tls_id):
        raise ValueError(f"invalid tls-id {tls_id!r} (RFC 8842 section 4)")
    return tls_id


def _datachannel_line(
    dc: DataChannelPlan, params: DataChannelAnswerParams
) -> tuple[MediaDescription, bool]:
    """The accepted m-line and whether ``ice-lite`` goes to session level."""
    if not params.fingerprints:
        raise ValueError("DataChannelAnswerParams.fingerprints must not be empty")
    if not 0 < params.port <= 65535 or not 0 < params.sctp_port <= 65535:
        raise ValueError(f"bad local port {params.port} or sctp-port {params.sctp_port}")
    md = dc.remote.media
    attrs: list[Attribute] = []
    if dc.remote.mid is not None:
        attrs.append(Attribute("mid", dc.remote.mid))
    ice_lite = False
    if dc.needs_ice:
        ice = params.ice
        if ice is None:
            raise ValueError("the offer has ICE: DataChannelAnswerParams.ice is required")
        ice_lite = ice.ice_lite
        attrs.append(Attribute("ice-ufrag", ice.ufrag))
        attrs.append(Attribute("ice-pwd", ice.pwd))
        if ice.options:
            attrs.append(Attribute("ice-options", " ".join(ice.options)))
        attrs.extend(Attribute("candidate", c) for c in ice.candidates)
        if ice.end_of_candidates:
            attrs.append(Attribute("end-of-candidates"))
    attrs.extend(Attribute("fingerprint", format_fingerprint(fp)) for fp in params.fingerprints)
    attrs.append(Attribute("setup", dc.local_setup))
    attrs.append(Attribute("tls-id", _local_tls_id(dc, params)))
    attrs.append(Attribute("sctp-port", str(params.sctp_port)))
    attrs.append(Attribute("max-message-size", str(params.max_message_size)))
    attrs.extend(Attribute("dcmap", value) for value in dc.dcmap_values)
    attrs.extend(Attribute("dcsa", format_dcsa(s)) for s in dc.dcsas)
    line = MediaDescription(
        media=md.media,
        port=params.port,
        proto=md.proto,
        formats=md.formats[:1],
        bandwidths=dc.remote.bandwidths if params.bandwidths is None else params.bandwidths,
        attrs=tuple(attrs),
    )
    return line, ice_lite


#: The attributes of the BUNDLE transport (RFC 8839, RFC 8122, RFC 4145 / 8842).
_TRANSPORT_ATTRIBUTES: Final = (
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "candidate",
    "end-of-candidates",
    "fingerprint",
    "setup",
)


def _with_transport(line: MediaDescription, dc_line: MediaDescription) -> MediaDescription:
    """A bundled m-line with the BUNDLE transport's attributes, copied from the data channel
    m-line: what JSEP implementations write in every bundled m-section (Chromium reads the
    transport from the BUNDLE-tag's m-section, which may be the audio one)."""
    transport = tuple(a for a in dc_line.attrs if a.name in _TRANSPORT_ATTRIBUTES)
    attrs = list(line.attrs)
    at = 1 if attrs and attrs[0].name == "mid" else 0
    return replace(line, attrs=(*attrs[:at], *transport, *attrs[at:]))


def render_answer(
    plan: AnswerPlan,
    params: DataChannelAnswerParams | None,
    *,
    local_address: str,
    session_id: int,
    session_version: int,
    username: str = "avatar-mf",
    audio_ports: Mapping[int, int] | None = None,
    audio_address: str | None = None,
    video_ports: Mapping[int, int] | None = None,
) -> SessionDescription:
    """Write the answer for ``plan`` with the local endpoint's ``params``.

    ``params`` may be ``None`` only when the plan accepts no data channel. ``audio_ports``
    gives the MF's RTP port for each accepted audio m-line (by index); ``audio_address``, when
    it differs from ``local_address``, is written as the audio m-lines' ``c=``; ``video_ports``
    likewise for accepted video m-lines (same ``c=``). Raises
    ``ValueError`` for inconsistent arguments (a programming error, not an SDP problem).
    """
    addrtype, address = _addrtype(local_address)
    if not username or any(ch.isspace() for ch in username):
        raise ValueError(f"o= username must be a non-empty token, got {username!r}")
    if session_id < 0 or session_version < 0:
        raise ValueError("session id and version must not be negative")
    dc = plan.datachannel
    if dc is not None and params is None:
        raise ValueError("the plan accepts a data channel: DataChannelAnswerParams required")

    media: list[MediaDescription] = []
    ice_lite = False
    audio_by_index = {a.index: a for a in plan.audio}
    video_by_index = {v.index: v for v in plan.video}
    ports = audio_ports or {}
    audio_c: str | None = None
    audio_type = addrtype
    if audio_address is not None:
        audio_type, audio_c = _addrtype(audio_address)
        if audio_c == address:
            audio_c = None
    dc_line: MediaDescription | None = None
    if dc is not None and params is not None:
        dc_line, ice_lite = _datachannel_line(dc, params)
    for line_plan in plan.lines:
        offered = plan.offer.media[line_plan.index]
        audio = audio_by_index.get(line_plan.index)
        video = video_by_index.get(line_plan.index)
        if video is not None:
            # A BUNDLEd video m-line repeats the BUNDLE address, as bundled audio does.
            bundled = video.bundled and params is not None and dc_line is not None
            port = params.port if bundled and params else (video_ports or {}).get(video.index)
            if port is None:
                raise ValueError(f"no RTP port given for video m-line {video.index}")
            vline = render_video_line(
                video, port=port, address=None if bundled else audio_c, addrtype=audio_type
            )
            media.append(_with_transport(vline, dc_line) if bundled and dc_line else vline)
        elif audio is not None:
            # A BUNDLEd audio m-line repeats the BUNDLE address (the data channel's port).
            port = params.port if audio.bundled and params is not None else ports.get(audio.index)
            if port is None:
                raise ValueError(f"no RTP port given for audio m-line {audio.index}")
            line = render_audio_line(audio, port=port, address=audio_c, addrtype=audio_type)
            if audio.bundled and dc_line is not None:
                line = _with_transport(line, dc_line)
            media.append(line)
        elif line_plan.accepted and dc_line is not None:
            media.append(dc_line)
        else:
            media.append(_rejected_line(offered))

    session_attrs: list[Attribute] = []
    if ice_lite:
        session_attrs.append(Attribute("ice-lite"))
    if plan.bundle_mids:
        session_attrs.append(Attribute("group", "BUNDLE " + " ".join(plan.bundle_mids)))
    return SessionDescription(
        origin=Origin(username, str(session_id), str(session_version), "IN", addrtype, address),
        session_name="-",
        connection=Connection("IN", addrtype, address),
        times=plan.offer.times,
        attrs=tuple(session_attrs),
        media=tuple(media),
    )


def build_answer(
    offer: SessionDescription,
    *,
    local_address: str,
    session_id: int,
    session_version: int,
    datachannel: DataChannelAnswerParams | None,
    username: str = "avatar-mf",
    policy: AnswerPolicy = DEFAULT_ANSWER_POLICY,
    previous: Negotiated | None = None,
) -> AnswerResult:
    """:func:`plan_answer` then :func:`render_answer`, for callers whose endpoint parameters
    do not depend on the plan."""
    plan = plan_answer(offer, policy, previous=previous)
    sdp = render_answer(
        plan,
        datachannel,
        local_address=local_address,
        session_id=session_id,
        session_version=session_version,
        username=username,
    )
    return AnswerResult(sdp, plan)


def versioned_answer(
    previous_answer: SessionDescription, answer: SessionDescription
) -> SessionDescription:
    """``answer`` with the ``o=`` session id and version RFC 3264 section 8 requires after
    ``previous_answer``: the same version if nothing else changed, else version + 1."""
    prev_origin = previous_answer.origin
    same_version = replace(
        answer,
        origin=replace(
            answer.origin, sess_id=prev_origin.sess_id, sess_version=prev_origin.sess_version
        ),
    )
    if same_version == previous_answer:
        return same_version
    return replace(
        same_version,
        origin=replace(same_version.origin, sess_version=str(prev_origin.version_number + 1)),
    )
