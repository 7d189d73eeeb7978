"""WebRTC-style audio m-lines (UDP/TLS/RTP/SAVPF BUNDLEd with the data channel):
sdp/webrtc_audio.py through offer_answer, with offers written like Chromium's and aiortc's."""

from __future__ import annotations

import pytest

from avatar_mf.sdp.audio import AudioPlan, AudioRejection
from avatar_mf.sdp.errors import SdpNotAcceptable
from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import AnswerPolicy, Negotiated, plan_answer, render_answer
from avatar_mf.sdp.webrtc_audio import bundle_group, plan_webrtc_audio
from tests.sdp.samples import LOCAL_ICE, dc_params
from tests.sdp.test_audio import FakeCaps
from tests.sdp.webrtc_samples import AIORTC_OFFER, CHROMIUM_OFFER

CAPS = FakeCaps([("AMR-WB", 16000), ("PCMU", 8000), ("PCMA", 8000), ("opus", 48000)])
POLICY = AnswerPolicy(audio=CAPS)


def _edit(offer: bytes, old: str, new: str) -> bytes:
    text = offer.decode()
    assert old in text
    return text.replace(old, new).encode()


def _answer(offer: bytes, policy: AnswerPolicy = POLICY) -> str:
    plan = plan_answer(parse_sdp(offer), policy)
    sdp = render_answer(
        plan, dc_params(ice=LOCAL_ICE), local_address="127.0.0.1", session_id=1, session_version=1
    )
    return serialize_sdp(sdp)


def _section(answer: str, media: str) -> str:
    return next(s for s in answer.split("m=")[1:] if s.startswith(media))


def test_chromium_offer_gets_opus_bundled_on_the_data_channel_transport() -> None:
    answer = _answer(CHROMIUM_OFFER)
    audio, app = _section(answer, "audio"), _section(answer, "application")
    # The BUNDLE address: both m-lines carry the data channel's port (RFC 8843, JSEP).
    assert audio.startswith("audio 40000 UDP/TLS/RTP/SAVPF 111 110\r\n")
    assert app.startswith("application 40000 ")
    assert "a=rtpmap:111 opus/48000/2" in audio
    assert "a=rtpmap:110 telephone-event/48000" in audio  # the one at Opus's clock rate
    assert "a=rtcp-mux" in audio and "a=mid:0" in audio and "c=" not in audio
    # The transport attributes in both m-lines (Chromium reads them from the tag's, audio).
    for attr in ("a=ice-ufrag:mfUf", "a=setup:active", "a=fingerprint:sha-256", "a=candidate:"):
        assert attr in audio and attr in app, attr
    assert "tls-id" not in audio and "sctp-port" not in audio
    # The offerer BUNDLE-tag (its first mid, audio) stays the tag.
    assert "a=group:BUNDLE 0 1\r\n" in answer


def test_aiortc_offer_gets_opus() -> None:
    plan = plan_answer(parse_sdp(AIORTC_OFFER), POLICY)
    assert len(plan.audio) == 1 and plan.audio[0].bundled
    assert (plan.audio[0].codec.payload_type, plan.audio[0].codec.name) == (96, "opus")
    assert plan.bundle_mids == ("0", "1")


def test_without_opus_pcmu_then_pcma() -> None:
    no_opus = _edit(AIORTC_OFFER, "UDP/TLS/RTP/SAVPF 96 0 8", "UDP/TLS/RTP/SAVPF 8 0")
    plan = plan_answer(parse_sdp(no_opus), POLICY)
    assert plan.audio[0].codec.name == "PCMU"  # the MF's order, not the offer's
    only_pcma = _edit(AIORTC_OFFER, "UDP/TLS/RTP/SAVPF 96 0 8", "UDP/TLS/RTP/SAVPF 8")
    assert plan_answer(parse_sdp(only_pcma), POLICY).audio[0].codec.name == "PCMA"


def test_opus_the_codec_layer_refuses_falls_back() -> None:
    caps = FakeCaps([("PCMU", 8000)])
    plan = plan_answer(parse_sdp(CHROMIUM_OFFER), AnswerPolicy(audio=caps))
    assert plan.audio[0].codec.name == "PCMU"
    assert plan.audio[0].telephone_event is not None
    assert plan.audio[0].telephone_event.clock_rate == 8000


def test_not_bundled_with_the_data_channel_is_port_0_and_the_call_goes_on() -> None:
    offer = _edit(AIORTC_OFFER, "a=group:BUNDLE 0 1\r\n", "")
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert plan.audio == () and plan.datachannel is not None
    assert not plan.lines[0].accepted and "BUNDLE" in (plan.lines[0].reason or "")
    answer = _answer(offer)
    assert _section(answer, "audio").startswith("audio 0 UDP/TLS/RTP/SAVPF")
    # Bundled with something else than the data channel: the same.
    other = _edit(AIORTC_OFFER, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0")
    assert plan_answer(parse_sdp(other), POLICY).audio == ()


def test_bundled_audio_without_rtcp_mux_is_refused() -> None:
    offer = _edit(AIORTC_OFFER, "a=rtcp-mux\r\n", "")
    outcome = plan_webrtc_audio(parse_sdp(offer), 0, CAPS, datachannel_mid="1")
    assert isinstance(outcome, AudioRejection) and "rtcp-mux" in outcome.reason


def test_bundle_only_audio_at_port_0_is_served() -> None:
    offer = _edit(AIORTC_OFFER, "m=audio 50123 ", "m=audio 0 ")
    offer = _edit(offer, "a=mid:0\r\n", "a=mid:0\r\na=bundle-only\r\n")
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert len(plan.audio) == 1
    assert _section(_answer(offer), "audio").startswith("audio 40000 ")
    # Port 0 without bundle-only is an offer disabling the m-line.
    disabled = _edit(AIORTC_OFFER, "m=audio 50123 ", "m=audio 0 ")
    assert plan_answer(parse_sdp(disabled), POLICY).audio == ()


def test_webrtc_audio_without_a_data_channel_is_not_acceptable() -> None:
    audio_only = CHROMIUM_OFFER.decode().split("m=application")[0].encode()
    with pytest.raises(SdpNotAcceptable):
        plan_answer(parse_sdp(audio_only), POLICY)


def test_reoffer_keeps_the_codec() -> None:
    no_opus = parse_sdp(_edit(AIORTC_OFFER, "UDP/TLS/RTP/SAVPF 96 0 8", "UDP/TLS/RTP/SAVPF 0"))
    first = plan_answer(no_opus, POLICY)
    answer = render_answer(
        first, dc_params(ice=LOCAL_ICE), local_address="127.0.0.1", session_id=1, session_version=1
    )
    again = plan_answer(parse_sdp(AIORTC_OFFER), POLICY, previous=Negotiated(no_opus, answer))
    assert again.audio[0].codec.name == "PCMU"


def test_direction_and_group_lookup() -> None:
    offer = parse_sdp(_edit(AIORTC_OFFER, "a=sendrecv", "a=sendonly"))
    outcome = plan_webrtc_audio(offer, 0, CAPS, datachannel_mid="1")
    assert isinstance(outcome, AudioPlan) and outcome.direction == "recvonly"
    assert bundle_group(offer, "1") == ("0", "1")
    assert bundle_group(offer, "7") is None and bundle_group(offer, None) is None


def test_ims_profiles_still_planned_as_before() -> None:
    # An RTP/AVP m-line with ICE stays refused by the IMS planner (not WebRTC's).
    offer = _edit(AIORTC_OFFER, "UDP/TLS/RTP/SAVPF", "RTP/AVP")
    plan = plan_answer(parse_sdp(offer), POLICY)
    assert plan.audio == () and "ICE" in (plan.lines[0].reason or "")
