"""RFC 3264 answers: initial offers (IMS and browser style), rejections, re-offers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from avatar_mf.sdp import (
    AnswerPolicy,
    AnswerResult,
    Attribute,
    DcMap,
    SdpNotAcceptable,
    SessionDescription,
    build_answer,
    parse_dcmap,
    parse_sdp,
    plan_answer,
    render_answer,
    serialize_sdp,
    versioned_answer,
)
from tests.sdp.samples import (
    BROWSER_OFFER,
    IMS_OFFER,
    LOCAL_FP,
    LOCAL_ICE,
    LOCAL_TLS_ID,
    dc_params,
    edit,
)

ICE_NAMES = ("ice-ufrag", "ice-pwd", "candidate", "ice-options", "end-of-candidates", "ice-lite")


def answer(offer: bytes | SessionDescription, **kwargs: Any) -> AnswerResult:
    sd = parse_sdp(offer) if isinstance(offer, bytes) else offer
    args: dict[str, Any] = {
        "local_address": "192.0.2.10",
        "session_id": 7,
        "session_version": 1,
        "datachannel": dc_params(),
    }
    args.update(kwargs)
    return build_answer(sd, **args)


def stream_ids(md_attrs: tuple[Attribute, ...]) -> list[int]:
    return [parse_dcmap(a.value or "").stream_id for a in md_attrs if a.name == "dcmap"]


# --- the shared IMS fixture --------------------------------------------------------------------


EXPECTED_IMS_ANSWER = (
    "v=0\r\n"
    "o=avatar-mf 7 1 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 0 RTP/AVP 97\r\n"
    "m=application 40000 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "b=AS:500\r\n"
    f"a=fingerprint:{LOCAL_FP}\r\n"
    "a=setup:passive\r\n"
    f"a=tls-id:{LOCAL_TLS_ID}\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:65536\r\n"
    'a=dcmap:0 subprotocol="http"\r\n'
    'a=dcmap:10 subprotocol="http"\r\n'
    'a=dcmap:1000 label="avatar-meta";subprotocol="3gpp-ar-metadata";ordered=1\r\n'
    'a=dcmap:1002 label="avatar-anim-1";subprotocol="3gpp-ar-animation";ordered=1;max-time=150\r\n'
    "a=dcsa:1000 3gpp-req-app:avatar\r\n"
)


def test_ims_fixture_answer() -> None:
    result = answer(IMS_OFFER)
    sd = result.sdp
    assert serialize_sdp(sd) == EXPECTED_IMS_ANSWER
    assert parse_sdp(serialize_sdp(sd)) == sd

    audio, app = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 0, "RTP/AVP", ("97",))
    assert audio.attrs == ()
    assert (app.media, app.port) == ("application", 40000)
    assert stream_ids(app.attrs) == [0, 10, 1000, 1002]
    assert not any(app.has_attribute(n) or sd.has_attribute(n) for n in ICE_NAMES)
    assert app.attribute_value("setup") == "passive"
    assert (app.attribute_value("fingerprint") or "").startswith("sha-256 ")
    assert [a.value for a in app.attributes("dcsa")] == ["1000 3gpp-req-app:avatar"]
    assert not sd.has_attribute("group")

    dc = result.plan.datachannel
    assert dc is not None and dc.index == 1
    assert dc.local_setup == "passive" and dc.dtls_role == "server"
    assert dc.new_association and not dc.needs_ice
    assert [d.stream_id for d in dc.changes.opened] == [0, 10, 1000, 1002]
    assert dc.changes.kept == () and dc.changes.closed == ()
    assert sorted(r.dcmap.stream_id for r in dc.rejected) == [7216, 38754]
    assert [(lp.index, lp.accepted, lp.warn_code) for lp in result.plan.lines] == [
        (0, False, 304),
        (1, True, None),
    ]


def test_two_phase_api_matches_build_answer() -> None:
    offer = parse_sdp(IMS_OFFER)
    plan = plan_answer(offer)
    assert plan.datachannel is not None and plan.datachannel.local_setup == "passive"
    sd = render_answer(
        plan, dc_params(), local_address="192.0.2.10", session_id=7, session_version=1
    )
    assert serialize_sdp(sd) == EXPECTED_IMS_ANSWER


def test_actpass_is_answered_passive_without_ice_and_active_with_ice() -> None:
    # RFC 8842 5.3 leaves the choice to the answerer: the IMS path (no ICE) waits for the
    # UE's ClientHello, the ICE path starts DTLS at once (RFC 5763 5's recommendation).
    ims = answer(IMS_OFFER).sdp.media[1]
    assert "a=setup:actpass" in IMS_OFFER.decode() and ims.attribute_value("setup") == "passive"
    browser = answer(BROWSER_OFFER, datachannel=dc_params(ice=LOCAL_ICE)).sdp.media[0]
    assert "a=setup:actpass" in BROWSER_OFFER.decode()
    assert browser.attribute_value("setup") == "active"


def test_policy_choices() -> None:
    active = AnswerPolicy(actpass_setup_without_ice="active", echo_dcsa=frozenset())
    app = answer(IMS_OFFER, policy=active).sdp.media[1]
    assert app.attribute_value("setup") == "active"
    assert not app.has_attribute("dcsa")
    # The override only applies without ICE.
    passive = AnswerPolicy(actpass_setup="passive", actpass_setup_without_ice=None)
    browser = answer(BROWSER_OFFER, policy=passive, datachannel=dc_params(ice=LOCAL_ICE))
    assert browser.sdp.media[0].attribute_value("setup") == "passive"
    assert answer(IMS_OFFER, policy=passive).sdp.media[1].attribute_value("setup") == "passive"


@pytest.mark.parametrize(("offered", "answered"), [("active", "passive"), ("passive", "active")])
def test_setup_answers_the_opposite_role(offered: str, answered: str) -> None:
    offer = edit(IMS_OFFER, replace={"a=setup": f"a=setup:{offered}"})
    dc = answer(offer, policy=AnswerPolicy(actpass_setup="passive")).sdp.media[1]
    assert dc.attribute_value("setup") == answered


def test_answer_params_and_bandwidth_and_ipv6() -> None:
    params = dc_params(port=50000, sctp_port=5001, max_message_size=262144, bandwidths=())
    sd = answer(
        IMS_OFFER,
        local_address="2001:DB8::10",
        datachannel=params,
        username="mf1",
        session_id=99,
        session_version=3,
    ).sdp
    assert str(sd.origin) == "mf1 99 3 IN IP6 2001:db8::10"
    assert str(sd.connection) == "IN IP6 2001:db8::10"
    app = sd.media[1]
    assert (app.port, app.bandwidths) == (50000, ())
    assert app.attribute_value("sctp-port") == "5001"
    assert app.attribute_value("max-message-size") == "262144"


def test_tls_id_generated_when_not_given() -> None:
    sd = answer(IMS_OFFER, datachannel=dc_params(tls_id=None)).sdp
    tls_id = sd.media[1].attribute_value("tls-id")
    assert tls_id is not None and len(tls_id) == 32 and tls_id != LOCAL_TLS_ID


def test_render_argument_errors() -> None:
    plan = plan_answer(parse_sdp(IMS_OFFER))
    common: dict[str, Any] = {
        "local_address": "192.0.2.10",
        "session_id": 1,
        "session_version": 1,
    }
    cases = [
        (None, common),
        (dc_params(fingerprints=()), common),
        (dc_params(port=0), common),
        (dc_params(tls_id="bad tls id"), common),
        (dc_params(), {**common, "local_address": "mf.example.net"}),
        (dc_params(), {**common, "username": "has space"}),
        (dc_params(), {**common, "session_version": -1}),
    ]
    for params, kwargs in cases:
        with pytest.raises(ValueError):
            render_answer(plan, params, **kwargs)


# --- browser style offer with ICE --------------------------------------------------------------


def test_browser_offer_answer_carries_ice() -> None:
    result = answer(BROWSER_OFFER, datachannel=dc_params(ice=LOCAL_ICE, port=40000))
    sd = result.sdp
    assert sd.attribute_value("group") == "BUNDLE 0"
    assert not sd.has_attribute("ice-lite")
    (app,) = sd.media
    assert [str(a) for a in app.attrs] == [
        "mid:0",
        "ice-ufrag:mfUf",
        "ice-pwd:mfPasswordMfPassword1234",
        "ice-options:trickle",
        "candidate:1 1 udp 2130706431 192.0.2.10 40000 typ host",
        "end-of-candidates",
        f"fingerprint:{LOCAL_FP}",
        "setup:active",
        f"tls-id:{LOCAL_TLS_ID}",
        "sctp-port:5000",
        "max-message-size:65536",
    ]
    dc = result.plan.datachannel
    assert dc is not None and dc.needs_ice and dc.remote.ice is not None
    assert dc.remote.ice.ufrag == "Kx3F"


def test_browser_offer_needs_local_ice_and_writes_ice_lite() -> None:
    plan = plan_answer(parse_sdp(BROWSER_OFFER))
    with pytest.raises(ValueError, match="ice is required"):
        render_answer(
            plan, dc_params(), local_address="192.0.2.10", session_id=1, session_version=1
        )
    lite = dataclasses.replace(LOCAL_ICE, ice_lite=True)
    sd = render_answer(
        plan, dc_params(ice=lite), local_address="192.0.2.10", session_id=1, session_version=1
    )
    assert sd.has_attribute("ice-lite") and not sd.media[0].has_attribute("ice-lite")


def test_local_ice_is_dropped_when_the_offer_has_none() -> None:
    sd = answer(IMS_OFFER, datachannel=dc_params(ice=LOCAL_ICE)).sdp
    assert not any(sd.media[1].has_attribute(n) or sd.has_attribute(n) for n in ICE_NAMES)


def test_browser_offer_with_rejected_audio_and_video_keeps_mids_and_bundle() -> None:
    offer = edit(
        BROWSER_OFFER,
        replace={"a=group:BUNDLE": "a=group:BUNDLE a v 0", "m=application": None},
        after={
            "a=msid-semantic": [
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
                "c=IN IP4 0.0.0.0",
                "a=mid:a",
                "a=rtpmap:111 opus/48000/2",
                "a=rtcp-mux",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "c=IN IP4 0.0.0.0",
                "a=mid:v",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            ]
        },
    )
    sd = answer(offer, datachannel=dc_params(ice=LOCAL_ICE)).sdp
    assert [(m.media, m.port, m.formats) for m in sd.media] == [
        ("audio", 0, ("111",)),
        ("video", 0, ("96",)),
        ("application", 40000, ("webrtc-datachannel",)),
    ]
    assert [m.attrs for m in sd.media[:2]] == [(Attribute("mid", "a"),), (Attribute("mid", "v"),)]
    assert sd.attribute_value("group") == "BUNDLE 0"


# --- not acceptable ----------------------------------------------------------------------------


AUDIO_ONLY = (
    b"v=0\r\no=ue1 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 97\r\na=rtpmap:97 AMR-WB/16000/1\r\n"
)


def test_audio_only_offer_is_488_media_type_not_available() -> None:
    with pytest.raises(SdpNotAcceptable) as info:
        plan_answer(parse_sdp(AUDIO_ONLY))
    err = info.value
    assert (err.status, err.reason_phrase) == (488, "Not Acceptable Here")
    assert err.warning.code == 304
    assert err.warning.header_value("mf.example.net").startswith('304 mf.example.net "SDP: ')
    assert "audio" in err.detail


def test_offer_without_media_is_488() -> None:
    with pytest.raises(SdpNotAcceptable):
        plan_answer(parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"m=application": "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"}, 304),
        ({"m=application": "m=application 49180 DTLS/SCTP 5000"}, 302),
        ({"a=fingerprint": None}, 399),
        ({"a=setup": "a=setup:holdconn"}, 399),
    ],
)
def test_unusable_data_channel_offer_is_488(changes: dict[str, str | None], code: int) -> None:
    with pytest.raises(SdpNotAcceptable) as info:
        plan_answer(parse_sdp(edit(IMS_OFFER, replace=changes)))
    assert info.value.warning.code == code


def test_first_acceptable_data_channel_wins_and_others_get_port_0() -> None:
    offer = edit(
        IMS_OFFER,
        replace={"m=application": "m=application 49182 DTLS/SCTP 5000"},
        append=[
            "m=application 49184 UDP/DTLS/SCTP webrtc-datachannel",
            "a=fingerprint:SHA-256 " + ":".join(["0A"] * 32),
            'a=dcmap:1000 subprotocol="3gpp-ar-metadata"',
            "m=application 49186 UDP/DTLS/SCTP webrtc-datachannel",
            "a=fingerprint:SHA-256 " + ":".join(["0B"] * 32),
        ],
    )
    result = answer(offer)
    assert [(m.media, m.port, m.proto) for m in result.sdp.media] == [
        ("audio", 0, "RTP/AVP"),
        ("application", 0, "DTLS/SCTP"),
        ("application", 40000, "UDP/DTLS/SCTP"),
        ("application", 0, "UDP/DTLS/SCTP"),
    ]
    assert result.sdp.media[1].formats == ("5000",)
    reasons = [lp.reason for lp in result.plan.lines]
    assert "legacy" in (reasons[1] or "") and "only one" in (reasons[3] or "")


def test_offer_disabled_m_line_stays_port_0() -> None:
    offer = edit(IMS_OFFER, replace={"m=audio": "m=audio 0 RTP/AVP 97"})
    result = answer(offer)
    assert result.sdp.media[0].port == 0
    assert result.plan.lines[0].reason == "disabled by the offer (port 0)"


# --- re-offers ---------------------------------------------------------------------------------


def reoffer(**kwargs: Any) -> bytes:
    base = edit(IMS_OFFER, replace={"o=": "o=ue1 2890844526 2890844527 IN IP4 127.0.0.1"})
    return edit(base, **kwargs)


def test_reoffer_adding_stream_1004_mid_call() -> None:
    first = answer(IMS_OFFER)
    offer = reoffer(
        after={
            "a=dcmap:1002": [
                'a=dcmap:1004 label="avatar-anim-2";subprotocol="3gpp-ar-animation";ordered=1'
            ]
        }
    )
    plan = plan_answer(parse_sdp(offer), previous=first.negotiated)
    dc = plan.datachannel
    assert dc is not None
    assert not dc.new_association
    assert dc.local_setup == "passive" and dc.previous_tls_id == LOCAL_TLS_ID
    assert [d.stream_id for d in dc.changes.opened] == [1004]
    assert [d.stream_id for d in dc.changes.kept] == [0, 10, 1000, 1002]
    assert dc.changes.closed == ()

    sd = render_answer(
        plan, dc_params(tls_id=None), local_address="192.0.2.10", session_id=7, session_version=1
    )
    app = sd.media[1]
    assert stream_ids(app.attrs) == [0, 10, 1000, 1002, 1004]
    assert app.attribute_value("tls-id") == LOCAL_TLS_ID
    assert app.attribute_value("setup") == "passive"
    assert len(sd.media) == 2 and sd.media[0].port == 0
    assert versioned_answer(first.sdp, sd).origin.sess_version == "2"
    with pytest.raises(ValueError, match="repeat the previous tls-id"):
        render_answer(
            plan,
            dc_params(tls_id="otherTlsId123456789012"),
            local_address="192.0.2.10",
            session_id=7,
            session_version=2,
        )


def test_unchanged_reoffer_keeps_everything_and_the_version() -> None:
    first = answer(IMS_OFFER)
    again = answer(
        reoffer(), previous=first.negotiated, datachannel=dc_params(tls_id=None), session_version=5
    )
    dc = again.plan.datachannel
    assert dc is not None and dc.changes.opened == () and len(dc.changes.kept) == 4
    assert versioned_answer(first.sdp, again.sdp) == first.sdp


def test_reoffer_removing_a_stream_closes_it() -> None:
    first = answer(IMS_OFFER)
    result = answer(reoffer(replace={"a=dcmap:1002": None}), previous=first.negotiated)
    dc = result.plan.datachannel
    assert dc is not None
    assert [d.stream_id for d in dc.changes.closed] == [1002]
    assert dc.changes.opened == ()


def test_reoffer_changing_stream_parameters_reopens_it() -> None:
    first = answer(IMS_OFFER)
    result = answer(
        reoffer(
            replace={
                "a=dcmap:1000": 'a=dcmap:1000 label="avatar-meta";'
                'subprotocol="3gpp-ar-metadata";ordered=0'
            }
        ),
        previous=first.negotiated,
    )
    dc = result.plan.datachannel
    assert dc is not None
    assert dc.changes.closed == (
        parse_dcmap('1000 label="avatar-meta";subprotocol="3gpp-ar-metadata";ordered=1'),
    )
    assert [(d.stream_id, d.ordered) for d in dc.changes.opened] == [(1000, False)]


def test_reoffer_with_new_tls_id_is_a_new_association() -> None:
    first = answer(IMS_OFFER)
    result = answer(
        reoffer(replace={"a=tls-id": "a=tls-id:ffffeeeeddddcccc"}),
        previous=first.negotiated,
        datachannel=dc_params(tls_id="newTlsIdForTheNewAssoc"),
        policy=AnswerPolicy(actpass_setup="passive"),
    )
    dc = result.plan.datachannel
    assert dc is not None and dc.new_association and dc.previous_tls_id is None
    assert dc.local_setup == "passive"
    assert len(dc.changes.opened) == 4 and len(dc.changes.closed) == 4
    assert result.sdp.media[1].attribute_value("tls-id") == "newTlsIdForTheNewAssoc"


def test_reoffer_forcing_a_role_conflict_is_a_new_association() -> None:
    first = answer(IMS_OFFER)  # MF is passive
    result = answer(reoffer(replace={"a=setup": "a=setup:passive"}), previous=first.negotiated)
    dc = result.plan.datachannel
    assert dc is not None and dc.new_association and dc.local_setup == "active"


def test_reoffer_without_tls_id_keeps_association_when_transport_unchanged() -> None:
    first = answer(BROWSER_OFFER, datachannel=dc_params(ice=LOCAL_ICE))
    same = plan_answer(parse_sdp(BROWSER_OFFER), previous=first.negotiated)
    assert same.datachannel is not None and not same.datachannel.new_association
    changed_fp = edit(
        BROWSER_OFFER, replace={"a=fingerprint": "a=fingerprint:sha-256 " + ":".join(["01"] * 32)}
    )
    new = plan_answer(parse_sdp(changed_fp), previous=first.negotiated)
    assert new.datachannel is not None and new.datachannel.new_association
    # Without ICE and tls-id, a new remote port means a new association.
    no_tls = edit(IMS_OFFER, replace={"a=tls-id": None})
    first_ims = answer(no_tls)
    moved = edit(
        no_tls, replace={"m=application": "m=application 49190 UDP/DTLS/SCTP webrtc-datachannel"}
    )
    plan = plan_answer(parse_sdp(moved), previous=first_ims.negotiated)
    assert plan.datachannel is not None and plan.datachannel.new_association


def test_reoffer_adding_an_m_line_keeps_order() -> None:
    first = answer(IMS_OFFER)
    result = answer(
        reoffer(append=["m=video 49200 RTP/AVP 96", "a=rtpmap:96 H264/90000"]),
        previous=first.negotiated,
    )
    assert [(m.media, m.port) for m in result.sdp.media] == [
        ("audio", 0),
        ("application", 40000),
        ("video", 0),
    ]
    assert result.plan.datachannel is not None
    assert not result.plan.datachannel.new_association


def test_reoffer_cannot_remove_m_lines() -> None:
    first = answer(IMS_OFFER)
    only_dc = reoffer(
        replace={
            "m=audio": None,
            "a=rtpmap": None,
            "a=fmtp": None,
            "a=ptime": None,
            "a=maxptime": None,
            "a=sendrecv": None,
        }
    )
    assert len(parse_sdp(only_dc).media) == 1
    with pytest.raises(SdpNotAcceptable, match="cannot be removed"):
        plan_answer(parse_sdp(only_dc), previous=first.negotiated)


def test_reoffer_disabling_the_data_channel_is_answered_with_port_0() -> None:
    first = answer(IMS_OFFER)
    offer = parse_sdp(
        reoffer(replace={"m=application": "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"})
    )
    result = answer(offer, previous=first.negotiated, datachannel=None)
    assert result.plan.datachannel is None
    assert [m.port for m in result.sdp.media] == [0, 0]
    # The same offer as an initial offer is 488.
    with pytest.raises(SdpNotAcceptable):
        plan_answer(offer)


def test_reoffer_that_breaks_the_data_channel_is_488() -> None:
    first = answer(IMS_OFFER)
    with pytest.raises(SdpNotAcceptable, match="fingerprint"):
        plan_answer(parse_sdp(reoffer(replace={"a=fingerprint": None})), previous=first.negotiated)


def test_dcmap_values_are_echoed_verbatim() -> None:
    odd = 'a=dcmap:1006 subprotocol="3gpp-ar-metadata";ordered=true;x-vendor=1'
    result = answer(edit(IMS_OFFER, after={"a=dcmap:1002": [odd]}))
    assert result.sdp.media[1].attributes("dcmap")[-1] == Attribute("dcmap", odd[8:])
    dc = result.plan.datachannel
    assert dc is not None
    assert dc.accepted[-1] == DcMap(
        1006, subprotocol="3gpp-ar-metadata", extensions=(("x-vendor", "1"),)
    )


def test_reoffer_mapping_a_live_stream_twice_is_488_not_a_closed_channel() -> None:
    """Issue 9: both dcmaps of a duplicated id were rejected, which closed the live bootstrap
    channel 0 without a word; the re-offer is refused and the call keeps its channels."""
    first = answer(IMS_OFFER)
    offer = reoffer(after={"a=dcmap:10 ": ['a=dcmap:0 subprotocol="http"']})
    with pytest.raises(SdpNotAcceptable) as info:
        plan_answer(parse_sdp(offer), previous=first.negotiated)
    assert info.value.status == 488
    assert info.value.warning.code == 399
    assert "stream id 0" in info.value.detail


@pytest.mark.parametrize(
    "address",
    ["garbage!", "999.1.2.3", "2001:db8::1", "-bad-.example.net", "1.2.3.4.5", "x" * 254],
)
def test_a_garbage_connection_address_is_488_with_warning_301(address: str) -> None:
    first = answer(IMS_OFFER)
    offer = reoffer(replace={"c=": f"c=IN IP4 {address}"})
    for previous in (None, first.negotiated):  # an initial offer and a re-offer alike
        with pytest.raises(SdpNotAcceptable) as info:
            plan_answer(parse_sdp(offer), previous=previous)
        assert info.value.warning.code == 301, address


@pytest.mark.parametrize("line", ["c=IN IP4 0.0.0.0", "c=IN IP4 ue1.ims.example.net"])
def test_ip_literals_and_host_names_are_connection_addresses(line: str) -> None:
    plan = plan_answer(parse_sdp(edit(IMS_OFFER, replace={"c=": line})))
    assert plan.datachannel is not None
