"""Property tests: hostile input raises only SdpError; generated values round-trip."""

from __future__ import annotations

from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    DcMap,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    format_dcmap,
    parse_dcmap,
    parse_dcsa,
    parse_fingerprint,
    parse_sdp,
    plan_answer,
    serialize_sdp,
)
from tests.sdp.samples import BROWSER_OFFER, IMS_OFFER, text_lines

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKEN_ALPHABET = "!#$%&'*+-.^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=12)
line_text = st.text(
    st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=30
)
digits = st.integers(0, 10**12).map(str)
ints = st.integers(0, 2**40)

# --- hostile input -----------------------------------------------------------------------------


@FAST
@given(st.text(max_size=400))
def test_parse_sdp_arbitrary_text_raises_only_sdp_error(text: str) -> None:
    try:
        parse_sdp(text)
    except SdpError:
        pass


@FAST
@given(st.binary(max_size=400))
def test_parse_sdp_arbitrary_bytes_raises_only_sdp_error(data: bytes) -> None:
    try:
        parse_sdp(data)
    except SdpError:
        pass


sdp_like_line = st.builds(
    lambda kind, value: f"{kind}={value}",
    st.sampled_from("vosiuepcbtrzkamx"),
    st.one_of(
        line_text,
        st.sampled_from(
            [
                "0",
                "- 1 1 IN IP4 1.2.3.4",
                "0 0",
                "audio 1 RTP/AVP 0",
                "IN IP4 1.2.3.4",
                "AS:1",
                "application 9 UDP/DTLS/SCTP webrtc-datachannel",
                'dcmap:1000 subprotocol="x"',
                "setup:actpass",
                "fingerprint:sha-256 " + ":".join(["AB"] * 32),
            ]
        ),
    ),
)


@FAST
@given(st.lists(sdp_like_line, max_size=25), st.sampled_from(["\r\n", "\n"]))
def test_parse_sdp_line_soup_raises_only_sdp_error(lines: list[str], eol: str) -> None:
    try:
        parse_sdp(eol.join(["v=0", *lines]) + eol)
    except SdpError:
        pass


@st.composite
def mutated_offer(draw: st.DrawFn) -> str:
    """A real offer with lines dropped, duplicated or altered."""
    lines = text_lines(draw(st.sampled_from([IMS_OFFER, BROWSER_OFFER])))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "cut", "append", "replace"]))
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "append":
            lines[i] += draw(line_text)
        else:
            kind = lines[i][:2]
            lines[i] = kind + draw(line_text)
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_offer())
def test_mutated_offers_raise_only_sdp_errors_through_plan_answer(text: str) -> None:
    try:
        plan_answer(parse_sdp(text))
    except SdpError:
        pass


@FAST
@given(st.text(max_size=120))
def test_parse_dcmap_dcsa_fingerprint_arbitrary_text_raise_only_sdp_error(text: str) -> None:
    for parser in (parse_dcmap, parse_dcsa, parse_fingerprint):
        try:
            parser(text)
        except SdpError:
            pass


dcmap_like = st.builds(
    lambda sid, params: f"{sid} " + ";".join(params),
    st.one_of(st.integers(0, 70000).map(str), tokens),
    st.lists(
        st.one_of(
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from(
                    ["label", "subprotocol", "ordered", "max-retr", "max-time", "priority", "x"]
                ),
                st.one_of(digits, line_text, line_text.map(lambda t: f'"{t}"')),
            ),
            line_text,
        ),
        max_size=5,
    ),
)


@FAST
@given(dcmap_like)
def test_parse_dcmap_structured_garbage_raises_only_sdp_error(text: str) -> None:
    try:
        parse_dcmap(text)
    except SdpError:
        pass


# --- round trips -------------------------------------------------------------------------------

unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


@st.composite
def dcmaps(draw: st.DrawFn) -> DcMap:
    reliability = draw(st.sampled_from(["reliable", "retr", "time"]))
    return DcMap(
        stream_id=draw(st.integers(0, 65534)),
        label=draw(st.none() | unicode_text),
        subprotocol=draw(st.none() | unicode_text),
        ordered=draw(st.booleans()),
        max_retr=draw(st.integers(0, 2**32 - 1)) if reliability == "retr" else None,
        max_time=draw(st.integers(0, 2**32 - 1)) if reliability == "time" else None,
        priority=draw(st.none() | st.integers(0, 65535)),
    )


@FAST
@given(dcmaps(), st.sampled_from(["numeric", "word"]))
def test_dcmap_round_trip(dcmap: DcMap, style: Literal["numeric", "word"]) -> None:
    text = format_dcmap(dcmap, ordered_style=style)
    assert parse_dcmap(text) == dcmap
    assert text.isascii()


attributes = st.builds(
    Attribute,
    st.text(TOKEN_ALPHABET.replace(":", ""), min_size=1, max_size=12),
    st.none() | line_text,
)
connections = st.builds(Connection, st.just("IN"), st.sampled_from(["IP4", "IP6"]), tokens)
bandwidths = st.builds(Bandwidth, tokens, ints)


media_descriptions = st.builds(
    MediaDescription,
    media=tokens,
    port=st.integers(0, 65535),
    proto=st.lists(tokens, min_size=1, max_size=3).map("/".join),
    formats=st.lists(tokens, min_size=1, max_size=4).map(tuple),
    port_count=st.none() | st.integers(1, 65535),
    info=st.none() | line_text,
    connections=st.lists(connections, max_size=2).map(tuple),
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    key=st.none() | line_text,
    attrs=st.lists(attributes, max_size=5).map(tuple),
)

session_descriptions = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin, tokens, digits, digits, st.just("IN"), st.sampled_from(["IP4", "IP6"]), tokens
    ),
    session_name=line_text,
    info=st.none() | line_text,
    uri=st.none() | line_text,
    emails=st.lists(line_text, max_size=2).map(tuple),
    phones=st.lists(line_text, max_size=2).map(tuple),
    connection=st.none() | connections,
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    times=st.lists(
        st.builds(Timing, ints, ints, st.lists(line_text, max_size=2).map(tuple)),
        min_size=1,
        max_size=2,
    ).map(tuple),
    time_zones=st.none() | line_text,
    key=st.none() | line_text,
    attrs=st.lists(attributes, max_size=5).map(tuple),
    media=st.lists(media_descriptions, max_size=3).map(tuple),
)


@FAST
@given(session_descriptions)
def test_session_description_round_trip(sd: SessionDescription) -> None:
    text = serialize_sdp(sd)
    parsed = parse_sdp(text)
    assert parsed == sd
    assert serialize_sdp(parsed) == text
    assert parse_sdp(text.replace("\r\n", "\n")) == sd
