"""WebRTC-style video m-lines (UDP/TLS/RTP/SAVPF BUNDLEd with the data channel and audio):
sdp/webrtc_video.py through offer_answer, with offers written like Chromium's and aiortc's."""

from __future__ import annotations

from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import AnswerPolicy, Negotiated, plan_answer, render_answer
from avatar_mf.sdp.video import VideoPlan, VideoRejection
from avatar_mf.sdp.webrtc_video import plan_webrtc_video
from tests.sdp.samples import LOCAL_ICE, dc_params
from tests.sdp.test_video import Caps
from tests.sdp.test_webrtc_audio import CAPS
from tests.sdp.webrtc_samples import AIORTC_AV_OFFER, CHROMIUM_AV_OFFER

POLICY = AnswerPolicy(audio=CAPS, video=Caps())
VP8_FIRST = AnswerPolicy(audio=CAPS, video=Caps(("VP8", "H264")))


def _edit(offer: bytes, old: str, new: str) -> bytes:
    text = offer.decode()
    assert old in text, old
    return text.replace(old, new).encode()


def _answer(offer: bytes, policy: AnswerPolicy = POLICY) -> str:
    plan = plan_answer(parse_sdp(offer), policy)
    sdp = render_answer(
        plan, dc_params(ice=LOCAL_ICE), local_address="127.0.0.1", session_id=1, session_version=1
    )
    return serialize_sdp(sdp)


def _section(answer: str, media: str) -> str:
    return next(s for s in answer.split("m=")[1:] if s.startswith(media))


def test_chromium_camera_gets_h264_mode_1_bundled_with_audio_and_data_channel() -> None:
    answer = _answer(CHROMIUM_AV_OFFER)
    video = _section(answer, "video")
    # 102 is H.264 packetization-mode 0: skipped; 104 is the first mode-1 H.264 offered.
    assert video.startswith("video 40000 UDP/TLS/RTP/SAVPF 104\r\n")
    assert "a=rtpmap:104 H264/90000" in video
    assert "packetization-mode=1" in video and "profile-level-id=42001f" in video
    # The feedback the MF supports, as offered for 104; not goog-remb nor transport-cc.
    fb = [line for line in video.split("\r\n") if line.startswith("a=rtcp-fb:")]
    assert fb == ["a=rtcp-fb:104 nack", "a=rtcp-fb:104 nack pli", "a=rtcp-fb:104 ccm fir"]
    assert "a=rtcp-mux" in video and "a=mid:1" in video and "c=" not in video
    for attr in ("a=ice-ufrag:mfUf", "a=setup:active", "a=fingerprint:sha-256", "a=candidate:"):
        assert attr in video, attr
    assert _section(answer, "audio").startswith("audio 40000 ")
    assert "a=group:BUNDLE 0 1 2\r\n" in answer


def test_chromium_camera_with_vp8_preferred_gets_vp8() -> None:
    plan = plan_answer(parse_sdp(CHROMIUM_AV_OFFER), VP8_FIRST)
    assert len(plan.video) == 1 and plan.video[0].bundled
    video = plan.video[0]
    assert (video.codec.payload_type, video.codec.name, video.answer_fmtp) == (96, "VP8", ())
    assert video.feedback == ("nack", "nack pli", "ccm fir")


def test_aiortc_camera_gets_h264_or_vp8_with_its_feedback() -> None:
    plan = plan_answer(parse_sdp(AIORTC_AV_OFFER), POLICY)
    assert plan.bundle_mids == ("0", "1", "2")
    video = plan.video[0]
    assert (video.codec.payload_type, video.codec.name) == (99, "H264")
    assert video.feedback == ("nack", "nack pli")  # aiortc offers no ccm fir
    vp8 = plan_answer(parse_sdp(AIORTC_AV_OFFER), VP8_FIRST).video[0]
    assert (vp8.codec.payload_type, vp8.codec.name) == (97, "VP8")


def test_only_h264_mode_0_is_refused() -> None:
    offer = _edit(AIORTC_AV_OFFER, "SAVPF 97 98 99 100 101 102", "SAVPF 101 102")
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert plan.video == () and len(plan.audio) == 1 and plan.datachannel is not None
    assert _section(_answer(offer), "video").startswith("video 0 ")


def test_payload_type_used_by_bundled_audio_is_not_reused() -> None:
    # The audio answers Opus on 96; a video offering VP8 on 96 as well (RFC 8843 9.2 forbids
    # it) gets its other codec, or port 0 when 96 was all it offered.
    clash = _edit(AIORTC_AV_OFFER, "SAVPF 97 98 99 100 101 102", "SAVPF 96 99")
    clash = _edit(clash, "a=rtpmap:97 VP8/90000", "a=rtpmap:96 VP8/90000")
    plan = plan_answer(parse_sdp(clash), VP8_FIRST)
    assert (plan.video[0].codec.payload_type, plan.video[0].codec.name) == (99, "H264")
    only = _edit(clash, "SAVPF 96 99", "SAVPF 96")
    plan = plan_answer(parse_sdp(only), VP8_FIRST)
    assert plan.video == ()
    line = plan.lines[1]
    assert not line.accepted and "8843" in (line.reason or "")
    assert plan.bundle_mids == ("0", "2")


def test_not_bundled_with_the_data_channel_is_port_0() -> None:
    offer = _edit(AIORTC_AV_OFFER, "a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 2")
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert plan.video == () and len(plan.audio) == 1
    assert "BUNDLE" in (plan.lines[1].reason or "")
    assert plan.bundle_mids == ("0", "2")
    answer = _answer(offer)
    assert _section(answer, "video").startswith("video 0 UDP/TLS/RTP/SAVPF")
    assert "a=group:BUNDLE 0 2\r\n" in answer


def test_without_rtcp_mux_or_without_video_caps() -> None:
    offer = parse_sdp(AIORTC_AV_OFFER)
    no_mux = parse_sdp(
        _edit(AIORTC_AV_OFFER, "a=msid:8f0e 6a11\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux", "")
    )
    outcome = plan_webrtc_video(no_mux, 1, Caps(), datachannel_mid="2")
    assert isinstance(outcome, VideoRejection) and "rtcp-mux" in outcome.reason
    outcome = plan_webrtc_video(offer, 1, Caps(), datachannel_mid=None)
    assert isinstance(outcome, VideoRejection) and "BUNDLE" in outcome.reason
    # A node with no video plane answers port 0; audio and data channel go on.
    plan = plan_answer(offer, AnswerPolicy(audio=CAPS))
    assert plan.video == () and len(plan.audio) == 1 and not plan.lines[1].accepted


def test_bundle_only_video_at_port_0_is_served_and_direction_answered() -> None:
    offer = _edit(AIORTC_AV_OFFER, "m=video 50123 ", "m=video 0 ")
    offer = _edit(offer, "a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n")
    offer = _edit(
        offer,
        "a=sendrecv\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:1",
        "a=recvonly\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:1",
    )
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert len(plan.video) == 1 and plan.video[0].direction == "sendonly"
    assert _section(_answer(offer), "video").startswith("video 40000 ")
    disabled = _edit(AIORTC_AV_OFFER, "m=video 50123 ", "m=video 0 ")
    assert plan_answer(parse_sdp(disabled), POLICY).video == ()


def test_reoffer_keeps_the_codec() -> None:
    first_offer = parse_sdp(AIORTC_AV_OFFER)
    first = plan_answer(first_offer, VP8_FIRST)
    answer = render_answer(
        first, dc_params(ice=LOCAL_ICE), local_address="127.0.0.1", session_id=1, session_version=1
    )
    again = plan_answer(first_offer, POLICY, previous=Negotiated(first_offer, answer))
    assert isinstance(again.video[0], VideoPlan) and again.video[0].codec.name == "VP8"
