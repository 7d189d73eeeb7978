"""IMS-style video m-lines in the answer (sdp/video.py through offer_answer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from avatar_mf.rtp.h264 import answer_h264_fmtp
from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import AnswerPolicy, Negotiated, plan_answer, render_answer
from avatar_mf.sdp.video import VideoPlan, VideoRejection, offered_feedback, plan_video
from tests.sdp.samples import IMS_OFFER, dc_params, edit
from tests.sdp.test_audio import CAPS


class Caps:
    """Video capabilities: H.264 with the RFC 6184 answer rules, VP8 with no fmtp."""

    def __init__(self, order: Sequence[str] = ("H264", "VP8")) -> None:
        self.order = list(order)

    def preference(self) -> Sequence[str]:
        return self.order

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        if name.upper() not in self.order or clock_rate != 90000:
            return None
        return answer_h264_fmtp(fmtp) if name.upper() == "H264" else {}


VIDEO_CAPS = Caps()


def video_only(formats: str, *extra: str, proto: str = "RTP/AVPF") -> bytes:
    lines = [
        "v=0",
        "o=ue 1 1 IN IP4 192.0.2.7",
        "s=-",
        "c=IN IP4 192.0.2.7",
        "t=0 0",
        f"m=video 49180 {proto} {formats}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


VOLTE_VIDEO = video_only(
    "99 98 100",
    "a=rtpmap:99 H264/90000",
    "a=fmtp:99 profile-level-id=640028;packetization-mode=1",
    "a=rtpmap:98 H264/90000",
    "a=fmtp:98 profile-level-id=42e01f;packetization-mode=1;"
    "sprop-parameter-sets=Z0LgH5ZUBQHtCA==,aM4xsg==",
    "a=rtpmap:100 VP8/90000",
    "a=rtcp-fb:* nack",
    "a=rtcp-fb:98 nack pli",
    "a=rtcp-fb:98 ccm fir",
    "a=rtcp-fb:98 goog-remb",
    "a=rtcp-fb:99 ccm tmmbr",
)


def test_h264_first_servable_format_with_its_answer_fmtp_and_feedback() -> None:
    plan = plan_video(parse_sdp(VOLTE_VIDEO), 0, VIDEO_CAPS)
    assert isinstance(plan, VideoPlan)
    # High 4.0 is decodable: offered first, so taken, at the MF's level 3.1
    assert plan.codec.payload_type == 99
    assert plan.fmtp == {"profile-level-id": "64001f", "packetization-mode": "1"}
    assert plan.feedback == ("nack",)  # only '*' applies to 99 (tmmbr is not supported)
    # with a 10-bit High profile first, the Constrained Baseline format is taken
    ten_bit = edit(
        VOLTE_VIDEO,
        replace={"a=fmtp:99": "a=fmtp:99 profile-level-id=6e0028;packetization-mode=1"},
    )
    plan = plan_video(parse_sdp(ten_bit), 0, VIDEO_CAPS)
    assert isinstance(plan, VideoPlan) and plan.codec.payload_type == 98
    assert plan.fmtp == {"profile-level-id": "42e01f", "packetization-mode": "1"}
    assert plan.feedback == ("nack", "nack pli", "ccm fir")
    assert (plan.remote_address, plan.remote_port, plan.remote_rtcp_port) == (
        "192.0.2.7",
        49180,
        49181,
    )


def test_mf_preference_then_vp8() -> None:
    offer = parse_sdp(video_only("100 98", "a=rtpmap:100 VP8/90000", "a=rtpmap:98 H264/90000"))
    plan = plan_video(offer, 0, VIDEO_CAPS)
    assert isinstance(plan, VideoPlan) and plan.codec.name == "H264"
    assert plan.fmtp == {"profile-level-id": "42000a", "packetization-mode": "0"}
    plan = plan_video(offer, 0, Caps(["VP8", "H264"]))
    assert isinstance(plan, VideoPlan) and plan.codec.name == "VP8" and plan.fmtp == {}
    mode2 = parse_sdp(
        video_only(
            "98 100",
            "a=rtpmap:98 H264/90000",
            "a=fmtp:98 packetization-mode=2",
            "a=rtpmap:100 VP8/90000",
        )
    )
    plan = plan_video(mode2, 0, VIDEO_CAPS)
    assert isinstance(plan, VideoPlan) and plan.codec.name == "VP8"


def test_feedback_only_with_avpf() -> None:
    offer = edit(VOLTE_VIDEO, replace={"m=video": "m=video 49180 RTP/AVP 98"})
    md = parse_sdp(offer).media[0]
    assert offered_feedback(md, 98) == ("nack", "nack pli", "ccm fir", "goog-remb")
    plan = plan_video(parse_sdp(offer), 0, VIDEO_CAPS)
    assert isinstance(plan, VideoPlan) and plan.feedback == ()


@pytest.mark.parametrize(
    "offer",
    [
        video_only("98", "a=rtpmap:98 H265/90000"),
        video_only("98", "a=rtpmap:98 H264/90000", "a=fmtp:98 packetization-mode=2"),
        video_only("98", "a=rtpmap:98 H264/90000", proto="RTP/SAVPF"),
        video_only("98", "a=rtpmap:98 H264/90000", "a=ice-ufrag:abcd"),
        video_only("98", "a=rtpmap:98 H264/90000")
        .replace(b"IN IP4 192.0.2.7", b"IN IP4 0.0.0.0")
        .replace(b"c=IN IP4 0.0.0.0", b"c=IN IP4 224.0.0.1"),
    ],
)
def test_unusable_video_is_rejected(offer: bytes) -> None:
    assert isinstance(plan_video(parse_sdp(offer), 0, VIDEO_CAPS), VideoRejection)


def test_answer_with_audio_video_and_datachannel() -> None:
    offer = edit(
        IMS_OFFER,
        after={
            "m=application": [],
        },
    ).decode()
    video_lines = [
        "m=video 49180 RTP/AVPF 98",
        "c=IN IP4 192.0.2.7",
        "a=rtpmap:98 H264/90000",
        "a=fmtp:98 profile-level-id=42e01f;packetization-mode=1",
        "a=rtcp-fb:98 nack pli",
        "a=rtcp-fb:98 ccm fir",
        "a=rtcp-mux",
    ]
    text = offer.rstrip("\r\n") + "\r\n" + "\r\n".join(video_lines) + "\r\n"
    parsed = parse_sdp(text.encode())
    video_index = len(parsed.media) - 1
    policy = AnswerPolicy(audio=CAPS, video=VIDEO_CAPS)
    plan = plan_answer(parsed, policy)
    assert plan.datachannel is not None and len(plan.audio) == 1 and len(plan.video) == 1
    answer = serialize_sdp(
        render_answer(
            plan,
            dc_params(),
            local_address="127.0.0.1",
            session_id=1,
            session_version=1,
            audio_ports={0: 30000},
            video_ports={video_index: 30002},
        )
    )
    assert "m=video 30002 RTP/AVPF 98\r\n" in answer
    assert "a=rtpmap:98 H264/90000\r\n" in answer
    assert "a=fmtp:98 profile-level-id=42e01f;packetization-mode=1\r\n" in answer
    assert "a=rtcp-fb:98 nack pli\r\n" in answer and "a=rtcp-fb:98 ccm fir\r\n" in answer
    assert answer.count("a=rtcp-mux") == 1
    # without video capabilities: port 0, as before
    plain = plan_answer(parsed, AnswerPolicy(audio=CAPS))
    assert plain.video == () and not plain.lines[video_index].accepted
    rendered = serialize_sdp(
        render_answer(
            plain,
            dc_params(),
            local_address="127.0.0.1",
            session_id=1,
            session_version=1,
            audio_ports={0: 30000},
        )
    )
    assert "m=video 0 RTP/AVPF 98\r\n" in rendered
    with pytest.raises(ValueError):
        render_answer(
            plan,
            dc_params(),
            local_address="127.0.0.1",
            session_id=1,
            session_version=1,
            audio_ports={0: 30000},
        )


def test_video_only_offer_is_a_call_and_reoffer_keeps_the_codec() -> None:
    policy = AnswerPolicy(video=VIDEO_CAPS)
    first_offer = parse_sdp(video_only("100", "a=rtpmap:100 VP8/90000"))
    first = plan_answer(first_offer, policy)
    assert [line.accepted for line in first.lines] == [True]
    answer = render_answer(
        first,
        None,
        local_address="127.0.0.1",
        session_id=1,
        session_version=1,
        video_ports={0: 30002},
    )
    reoffer = parse_sdp(video_only("98 100", "a=rtpmap:98 H264/90000", "a=rtpmap:100 VP8/90000"))
    again = plan_answer(reoffer, policy, previous=Negotiated(first_offer, answer))
    assert again.video[0].codec.name == "VP8"
    assert plan_answer(reoffer, policy).video[0].codec.name == "H264"
