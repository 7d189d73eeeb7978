"""IMS-style audio m-lines in the answer (sdp/audio.py through offer_answer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from avatar_mf.sdp.audio import AudioPlan, AudioRejection, offered_formats, plan_audio
from avatar_mf.sdp.errors import SdpNotAcceptable
from avatar_mf.sdp.model import parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import AnswerPolicy, Negotiated, plan_answer, render_answer
from tests.sdp.samples import IMS_OFFER, dc_params, edit


class FakeCaps:
    """Capabilities as a table: (name, rate) -> fmtp answer (None: refuses those params)."""

    def __init__(self, order: Sequence[tuple[str, int]], refuse_bandwidth_efficient: bool = False):
        self.order = list(order)
        self.refuse_be = refuse_bandwidth_efficient

    def preference(self) -> Sequence[tuple[str, int]]:
        return self.order

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        if (name.upper(), clock_rate) not in {(n.upper(), r) for n, r in self.order}:
            return None
        if name.upper().startswith("AMR"):
            octet = fmtp.get("octet-align", "0") == "1"
            if self.refuse_be and not octet:
                return None
            return {"octet-align": "1"} if octet else {}
        return {}


CAPS = FakeCaps([("AMR-WB", 16000), ("AMR", 8000), ("PCMU", 8000), ("PCMA", 8000)])


def audio_only(formats: str, *extra: str, proto: str = "RTP/AVP") -> bytes:
    lines = [
        "v=0",
        "o=ue 1 1 IN IP4 192.0.2.7",
        "s=-",
        "c=IN IP4 192.0.2.7",
        "t=0 0",
        f"m=audio 49170 {proto} {formats}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_static_payload_types_need_no_rtpmap() -> None:
    md = parse_sdp(audio_only("0 8 96")).media[0]
    assert [(f.payload_type, f.name, f.clock_rate) for f in offered_formats(md)] == [
        (0, "PCMU", 8000),
        (8, "PCMA", 8000),
    ]


def test_mf_preference_wins_over_offer_order() -> None:
    offer = parse_sdp(
        audio_only(
            "0 97 101",
            "a=rtpmap:97 AMR-WB/16000/1",
            "a=rtpmap:101 telephone-event/16000",
            "a=rtpmap:0 PCMU/8000",
        )
    )
    plan = plan_audio(offer, 0, CAPS)
    assert isinstance(plan, AudioPlan)
    assert plan.codec.name == "AMR-WB" and plan.codec.payload_type == 97
    assert plan.telephone_event is not None and plan.telephone_event.payload_type == 101
    assert plan.payload_types == {97, 101}
    assert (plan.remote_address, plan.remote_port, plan.remote_rtcp_port) == (
        "192.0.2.7",
        49170,
        49171,
    )
    assert not plan.rtcp_mux and plan.direction == "sendrecv"


def test_telephone_event_only_at_matching_clock_rate() -> None:
    offer = parse_sdp(audio_only("0 101", "a=rtpmap:101 telephone-event/16000"))
    plan = plan_audio(offer, 0, CAPS)
    assert isinstance(plan, AudioPlan) and plan.telephone_event is None


def test_amr_params_the_mf_cannot_meet_fall_back_to_next() -> None:
    caps = FakeCaps([("AMR-WB", 16000), ("PCMU", 8000)], refuse_bandwidth_efficient=True)
    offer = parse_sdp(IMS_OFFER)
    plan = plan_audio(offer, 0, caps)
    assert isinstance(plan, AudioPlan)
    # 97 is bandwidth-efficient (refused by these caps), 98 octet-aligned.
    assert plan.codec.payload_type == 98
    assert dict(plan.answer_fmtp) == {"octet-align": "1"}


@pytest.mark.parametrize(
    ("offered", "answered"),
    [("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")],
)
def test_direction_rfc3264_6_1(offered: str, answered: str) -> None:
    plan = plan_audio(parse_sdp(audio_only("0", f"a={offered}")), 0, CAPS)
    assert isinstance(plan, AudioPlan) and plan.direction == answered


def test_rtcp_mux_and_rtcp_attribute() -> None:
    mux = plan_audio(parse_sdp(audio_only("0", "a=rtcp-mux")), 0, CAPS)
    assert isinstance(mux, AudioPlan) and mux.rtcp_mux and mux.remote_rtcp_port == 49170
    explicit = plan_audio(parse_sdp(audio_only("0", "a=rtcp:50001 IN IP4 192.0.2.7")), 0, CAPS)
    assert isinstance(explicit, AudioPlan) and explicit.remote_rtcp_port == 50001


@pytest.mark.parametrize(
    "offer",
    [
        audio_only("96", "a=rtpmap:96 EVS/16000"),
        audio_only("0", proto="RTP/SAVP"),
        audio_only("0", "a=ice-ufrag:abcd"),
        audio_only("0").replace(b"c=IN IP4 192.0.2.7", b"c=IN IP4 224.0.0.9"),
    ],
)
def test_unusable_audio_is_rejected(offer: bytes) -> None:
    assert isinstance(plan_audio(parse_sdp(offer), 0, CAPS), AudioRejection)


def test_answer_with_audio_and_datachannel() -> None:
    policy = AnswerPolicy(audio=CAPS)
    plan = plan_answer(parse_sdp(IMS_OFFER), policy)
    assert plan.datachannel is not None and len(plan.audio) == 1
    sdp = render_answer(
        plan,
        dc_params(),
        local_address="127.0.0.1",
        session_id=1,
        session_version=1,
        audio_ports={0: 30000},
        audio_address="203.0.113.5",
    )
    text = serialize_sdp(sdp)
    assert "m=audio 30000 RTP/AVP 97 100\r\n" in text
    assert "a=rtpmap:97 AMR-WB/16000\r\n" in text
    assert "a=rtpmap:100 telephone-event/16000\r\n" in text
    assert "c=IN IP4 203.0.113.5\r\n" in text  # media-level: the advertised address
    assert "a=rtcp-mux" not in text  # not offered
    assert "a=sendrecv" in text
    # Without capabilities audio stays port 0 (the data channel-only MF).
    plain = plan_answer(parse_sdp(IMS_OFFER))
    assert plain.audio == () and not plain.lines[0].accepted


def test_audio_only_offer_is_a_call_and_unusable_audio_still_488() -> None:
    policy = AnswerPolicy(audio=CAPS)
    plan = plan_answer(parse_sdp(audio_only("0")), policy)
    assert [line.accepted for line in plan.lines] == [True]
    with pytest.raises(SdpNotAcceptable):
        plan_answer(parse_sdp(audio_only("96", "a=rtpmap:96 EVS/16000")), policy)


def test_unusable_audio_beside_datachannel_goes_port_0_and_call_goes_on() -> None:
    offer = edit(IMS_OFFER, replace={"a=rtpmap:97": "a=rtpmap:97 EVS/16000", "a=rtpmap:98": None})
    plan = plan_answer(parse_sdp(offer), AnswerPolicy(audio=CAPS))
    assert plan.audio == () and plan.datachannel is not None
    assert not plan.lines[0].accepted and "no audio codec" in (plan.lines[0].reason or "")


def test_reoffer_keeps_the_codec() -> None:
    policy = AnswerPolicy(audio=CAPS)
    first_offer = parse_sdp(audio_only("8 0"))
    first = plan_answer(first_offer, policy)
    assert first.audio[0].codec.name == "PCMU"  # MF preference: PCMU before PCMA
    answer = render_answer(
        first,
        None,
        local_address="127.0.0.1",
        session_id=1,
        session_version=1,
        audio_ports={0: 30000},
    )
    # The re-offer adds AMR-WB, which the MF prefers, but the call keeps PCMU.
    reoffer = parse_sdp(audio_only("97 8 0", "a=rtpmap:97 AMR-WB/16000"))
    again = plan_answer(reoffer, policy, previous=Negotiated(first_offer, answer))
    assert again.audio[0].codec.name == "PCMU"
    fresh = plan_answer(reoffer, policy)
    assert fresh.audio[0].codec.name == "AMR-WB"
