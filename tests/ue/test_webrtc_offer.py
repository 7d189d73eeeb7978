"""The test UE's WebRTC-style offer (ue/offer.py, ue/rtp_audio.py, ue/rtp_video.py): its audio
and video m-lines are BUNDLEd with the data channel, and the MF's planner serves them (Opus,
VP8/H.264, real codec registries)."""

from __future__ import annotations

from avatar_mf.calls.audio import RegistryAudioCaps
from avatar_mf.calls.video import RegistryVideoCaps
from avatar_mf.media.params import LocalIce, LocalParams
from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import AnswerPolicy, plan_answer
from avatar_mf.ue.offer import build_offer
from avatar_mf.ue.rtp_audio import UeAudio
from avatar_mf.ue.rtp_video import UeVideo

LOCAL = LocalParams(
    address="127.0.0.1",
    port=41000,
    setup="actpass",
    fingerprints=(("sha-256", "AB:" * 31 + "CD"),),
    sctp_port=5000,
    max_message_size=262144,
    tls_id="ueTlsId0123456789abcdef",
    ice=LocalIce(
        "ueUf", "uePasswordUePassword1234", ("1 1 udp 2130706431 127.0.0.1 41000 typ host",)
    ),
)


def test_webrtc_audio_is_bundled_with_the_data_channel() -> None:
    audio = UeAudio("127.0.0.1", webrtc=True)
    offer = build_offer(LOCAL, session_id=1, session_version=1, audio=audio.media())
    text = serialize_sdp(offer)
    assert "a=group:BUNDLE audio dc\r\n" in text
    md_audio, md_dc = offer.media
    assert md_audio.proto == "UDP/TLS/RTP/SAVPF" and md_audio.port == md_dc.port == 41000
    assert md_audio.attribute_value("mid") == "audio" and md_dc.attribute_value("mid") == "dc"
    # RFC 8843 7.2: each bundled m-line of an offer carries the transport attributes.
    for name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup", "candidate"):
        assert md_audio.attribute_value(name) == md_dc.attribute_value(name), name
    assert md_audio.has_attribute("rtcp-mux")
    assert "a=rtpmap:111 opus/48000/2" in text and "telephone-event/48000" in text

    plan = plan_answer(parse_sdp(text.encode()), AnswerPolicy(audio=RegistryAudioCaps()))
    (served,) = plan.audio
    assert served.bundled and served.codec.name == "opus" and served.codec.payload_type == 111
    assert plan.bundle_mids == ("audio", "dc")


def test_ims_audio_offer_has_no_bundle() -> None:
    audio = UeAudio("127.0.0.1", codecs=("PCMU",))
    offer = build_offer(LOCAL, session_id=1, session_version=1, audio=audio.media())
    assert not offer.attributes("group") and offer.media[0].proto == "RTP/AVP"
    assert offer.media[1].attribute_value("mid") is None


def test_webrtc_video_is_bundled_with_audio_and_data_channel() -> None:
    audio = UeAudio("127.0.0.1", webrtc=True)
    video = UeVideo("127.0.0.1", codecs=("VP8", "H264"), webrtc=True)
    offer = build_offer(
        LOCAL, session_id=1, session_version=1, audio=audio.media(), video=video.media()
    )
    text = serialize_sdp(offer)
    assert "a=group:BUNDLE audio video dc\r\n" in text
    md_audio, md_video, md_dc = offer.media
    assert md_video.proto == "UDP/TLS/RTP/SAVPF" and md_video.port == md_dc.port == 41000
    assert md_video.attribute_value("mid") == "video" and md_video.has_attribute("rtcp-mux")
    for name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup", "candidate"):
        assert md_video.attribute_value(name) == md_dc.attribute_value(name), name

    policy = AnswerPolicy(audio=RegistryAudioCaps(), video=RegistryVideoCaps())
    plan = plan_answer(parse_sdp(text.encode()), policy)
    (served,) = plan.video
    assert served.bundled and served.codec.name.upper() in ("VP8", "H264")
    assert served.feedback == ("nack", "nack pli", "ccm fir")
    assert plan.bundle_mids == ("audio", "video", "dc")
    # The payload types of the two m-lines do not overlap (RFC 8843 9.2).
    assert not plan.audio[0].payload_types & served.payload_types


def test_webrtc_video_alone_is_bundled_with_the_data_channel() -> None:
    video = UeVideo("127.0.0.1", codecs=("VP8",), webrtc=True, count=0)
    offer = build_offer(LOCAL, session_id=1, session_version=1, video=video.media())
    assert [a.value for a in offer.attributes("group")] == ["BUNDLE video dc"]
    assert offer.media[0].has_attribute("recvonly")
