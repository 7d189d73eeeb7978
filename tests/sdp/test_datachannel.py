"""Data channel attributes (RFC 8864 dcmap/dcsa, RFC 8122, RFC 8842, RFC 8839) and policy."""

from __future__ import annotations

import hashlib

import pytest

from avatar_mf.sdp import (
    DcMap,
    DcSa,
    Fingerprint,
    SdpError,
    SdpNotAcceptable,
    StreamPolicy,
    accept_streams,
    format_dcmap,
    format_dcsa,
    format_fingerprint,
    generate_tls_id,
    parse_datachannel_offer,
    parse_dcmap,
    parse_dcsa,
    parse_fingerprint,
    parse_sdp,
)
from tests.sdp.samples import BROWSER_OFFER, IMS_LINE, IMS_OFFER, edit

# --- dcmap -----------------------------------------------------------------------------------


def test_parse_dcmap_full() -> None:
    d = parse_dcmap(
        '1002 label="avatar-anim-1";subprotocol="3gpp-ar-animation";ordered=1;max-time=150'
    )
    assert d == DcMap(1002, "avatar-anim-1", "3gpp-ar-animation", True, None, 150, None)
    assert not d.reliable


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('0 subprotocol="http"', DcMap(0, subprotocol="http")),
        ("10", DcMap(10)),
        ('38754 max-time=150;label="low latency"', DcMap(38754, "low latency", max_time=150)),
        ('7216 max-retr=5;label="low loss"', DcMap(7216, "low loss", max_retr=5)),
        (
            '2 subprotocol="msrp";ordered=true;label="msrp"',
            DcMap(2, "msrp", "msrp", ordered=True),
        ),
        (
            '3 label="Label 1";ordered=false;max-retr=5;priority=128',
            DcMap(3, "Label 1", ordered=False, max_retr=5, priority=128),
        ),
        ('4 label="foo%09bar";ordered=true;max-time=15000', DcMap(4, "foo\tbar", max_time=15000)),
        ('5 label="caf%C3%A9 100%25";ORDERED=0', DcMap(5, "café 100%", ordered=False)),
        ('6 label="a;b"', DcMap(6, "a;b")),
        ("7 label=plain;subprotocol=http", DcMap(7, "plain", "http")),
        ('8  label="x" ; ordered=1 ;', DcMap(8, "x")),
        (
            '9 label="";x-new=42;x-flag="v;w"',
            DcMap(9, "", extensions=(("x-new", "42"), ("x-flag", '"v;w"'))),
        ),
        ("65534", DcMap(65534)),
    ],
)
def test_parse_dcmap_variants(value: str, expected: DcMap) -> None:
    assert parse_dcmap(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "stream id"),
        ('abc label="x"', "stream id"),
        ("65535", "stream id"),
        ("123456", "stream id"),
        ("-1", "stream id"),
        ("\u0661\u0662", "stream id"),
        ('1 label="unterminated', "unterminated"),
        ('1 label="a"b"c"', "stray"),
        ("1 label", "expected name=value"),
        ("1 =5", "expected name=value"),
        ("1 ordered=maybe", "ordered"),
        ("1 max-retr=5;max-time=10", "must not both be present"),
        ("1 max-retr=x", "max-retr"),
        ("1 max-time=99999999999", "max-time"),
        ("1 priority=65536", "priority"),
        ('1 label="a";label="b"', "appears twice"),
        ('1 label="100%"', "two hex digits"),
        ('1 label="%ZZ"', "two hex digits"),
        ('1 label="%FF"', "UTF-8"),
        ('1 label="tab\there"', "control character"),
        ("1 label=has space", "quoted string"),
    ],
)
def test_parse_dcmap_garbage_raises_sdp_error(value: str, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_dcmap(value)
    assert fragment in info.value.detail
    assert info.value.status == 400


def test_format_dcmap_quotes_and_round_trips() -> None:
    d = DcMap(
        1002, 'caf\u00e9 "q" 50%\t', "3gpp-ar-animation", ordered=False, max_time=150, priority=256
    )
    text = format_dcmap(d)
    assert text == (
        '1002 label="caf%C3%A9 %22q%22 50%25%09";subprotocol="3gpp-ar-animation";'
        "ordered=0;max-time=150;priority=256"
    )
    assert parse_dcmap(text) == d
    assert format_dcmap(DcMap(0, subprotocol="http"), ordered_style="word") == (
        '0 subprotocol="http";ordered=true'
    )
    assert str(DcMap(10)) == "10 ordered=1"


def test_dcmap_constructor_validates() -> None:
    with pytest.raises(ValueError):
        DcMap(1, max_retr=1, max_time=1)
    with pytest.raises(ValueError):
        DcMap(65535)


def test_dcsa() -> None:
    s = parse_dcsa("1000 3gpp-req-app:avatar")
    assert s == DcSa(1000, "3gpp-req-app:avatar")
    assert (s.name, s.value) == ("3gpp-req-app", "avatar")
    assert parse_dcsa("100 3gpp-bdc-used-by:sender").value == "sender"
    assert parse_dcsa("5 sendonly").value is None
    assert format_dcsa(s) == "1000 3gpp-req-app:avatar"
    for bad in ("", "x y", "1000", "1000 ", "1000 :v", "70000 a"):
        with pytest.raises(SdpError):
            parse_dcsa(bad)


# --- fingerprint / tls-id ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "size"), [("SHA-1", 20), ("sha-256", 32), ("Sha-384", 48), ("SHA-512", 64)]
)
def test_fingerprint_hash_functions_case_insensitive(func: str, size: int) -> None:
    digest = bytes(range(size))
    hex_lower = ":".join(f"{b:02x}" for b in digest)
    fp = parse_fingerprint(f"{func} {hex_lower}")
    assert fp == Fingerprint(func.lower(), digest) and fp.supported
    assert format_fingerprint(fp) == f"{func.lower()} " + ":".join(f"{b:02X}" for b in digest)
    assert parse_fingerprint(str(fp)) == fp


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("sha-256", "expected '<hash-func> <hex>'"),
        ("sha-256 AB:CD extra", "expected '<hash-func> <hex>'"),
        ("sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:XY", "hex octets"),
        ("sha-1 4AAD:B9", "hex octets"),
        ("sha-1 4A:AD:", "hex octets"),
        ("sha-256 4A:AD:B9", "32 octets"),
        ("sha/1 4A", "hash function"),
    ],
)
def test_bad_fingerprints(value: str, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_fingerprint(value)
    assert fragment in info.value.detail


def test_fingerprint_constructor_normalises_hash_name() -> None:
    assert Fingerprint("SHA-256", b"\x01" * 32) == Fingerprint("sha-256", b"\x01" * 32)
    assert Fingerprint("SHA-256", b"\x01" * 32).supported


def test_unknown_hash_parses_but_is_unsupported() -> None:
    fp = parse_fingerprint("md5 00:11:22")
    assert fp.hash_func == "md5" and not fp.supported
    assert not fp.matches_certificate(b"x")


def test_fingerprint_of_certificate_and_match() -> None:
    der = b"\x30\x82certificate"
    for func in ("sha-1", "sha-256", "sha-384", "sha-512"):
        fp = Fingerprint.of_certificate(der, func.upper())
        assert fp.value == hashlib.new(func.replace("-", ""), der).digest()
        assert fp.matches_certificate(der) and not fp.matches_certificate(der + b"!")
    with pytest.raises(ValueError):
        Fingerprint.of_certificate(der, "md5")


def test_generate_tls_id() -> None:
    tls_id = generate_tls_id(lambda n: bytes(range(n)))
    assert len(tls_id) == 32
    assert generate_tls_id() != generate_tls_id()


# --- the data channel m-line -------------------------------------------------------------------


def test_ims_fixture_data_channel_offer() -> None:
    sd = parse_sdp(IMS_OFFER)
    dc = parse_datachannel_offer(sd, 1)
    assert dc.index == 1 and dc.media is sd.media[1]
    assert (dc.remote_address, dc.remote_addrtype, dc.remote_port) == ("127.0.0.1", "IP4", 49180)
    assert (dc.sctp_port, dc.max_message_size) == (5000, 1024)
    assert dc.setup == "actpass"
    assert [f.hash_func for f in dc.fingerprints] == ["sha-1"]
    assert dc.fingerprints[0].value.hex().upper().startswith("4AADB9B1")
    assert dc.tls_id == "4a4bb9b13f82183b"
    assert dc.ice is None
    assert [d.stream_id for d in dc.dcmaps] == [0, 10, 1000, 1002, 38754, 7216]
    assert dc.dcsas == (DcSa(1000, "3gpp-req-app:avatar"),)
    assert dc.mid is None and dc.bootstrap_used_by is None
    assert [str(b) for b in dc.bandwidths] == ["AS:500"]


def test_browser_fixture_data_channel_offer_has_ice() -> None:
    dc = parse_datachannel_offer(parse_sdp(BROWSER_OFFER), 0)
    assert dc.ice is not None
    assert (dc.ice.ufrag, dc.ice.pwd) == ("Kx3F", "9bTq0Bs7GmVYcLdLpE4ynAUh")
    assert len(dc.ice.candidates) == 2 and dc.ice.candidates[0].startswith("1467250027 1 udp")
    assert dc.ice.options == ("trickle",)
    assert not dc.ice.ice_lite and not dc.ice.end_of_candidates
    assert dc.mid == "0" and dc.max_message_size == 262144
    assert dc.fingerprints[0].hash_func == "sha-256"
    assert dc.tls_id is None


def test_defaults_and_session_level_fallbacks() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\n"
        "a=fingerprint:SHA-256 " + ":".join(["AB"] * 32) + "\r\n"
        "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=ice-lite\r\n"
        "a=ice-options:trickle ice2\r\n"
        "m=application 5000 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        "a=3gpp-bdc-used-by:sender\r\n"
        "a=end-of-candidates\r\n"
    )
    dc = parse_datachannel_offer(parse_sdp(text), 0)
    assert dc.setup == "active"  # RFC 4145: absent means active
    assert (dc.sctp_port, dc.max_message_size) == (5000, 65536)
    assert (dc.remote_address, dc.remote_addrtype) == ("2001:db8::5", "IP6")
    assert dc.fingerprints[0].hash_func == "sha-256"
    assert dc.ice is not None and dc.ice.ice_lite and dc.ice.end_of_candidates
    assert dc.ice.options == ("trickle", "ice2")
    assert dc.bootstrap_used_by == "sender"


@pytest.mark.parametrize(
    ("changes", "line", "fragment"),
    [
        ({"a=setup": "a=setup:sideways"}, IMS_LINE["setup"], "bad a=setup"),
        ({"a=fingerprint": "a=fingerprint:SHA-1 4A:AD:ZZ"}, IMS_LINE["fingerprint"], "hex"),
        ({"a=fingerprint": "a=fingerprint:SHA-256 4A:AD"}, IMS_LINE["fingerprint"], "32 octets"),
        (
            {"a=dcmap:1002": 'a=dcmap:1002 label="x";max-retr=3;max-time=150'},
            IMS_LINE["dcmap:1002"],
            "must not both be present",
        ),
        ({"a=dcmap:0 ": "a=dcmap:zero"}, IMS_LINE["dcmap:0"], "stream id"),
        ({"a=dcmap:7216": 'a=dcmap:7216 label="x'}, IMS_LINE["dcmap:7216"], "unterminated"),
        ({"a=dcsa": "a=dcsa:abc"}, IMS_LINE["dcsa"], "bad a=dcsa"),
        ({"a=tls-id": "a=tls-id:not valid!"}, IMS_LINE["tls-id"], "bad a=tls-id"),
        ({"a=sctp-port": "a=sctp-port:0"}, 19, "bad a=sctp-port"),
        ({"a=max-message-size": "a=max-message-size:big"}, 18, "bad a=max-message-size"),
        ({"c=": None}, IMS_LINE["m=application"], "no c= line"),
    ],
)
def test_malformed_data_channel_attributes_raise_400_with_line(
    changes: dict[str, str | None], line: int, fragment: str
) -> None:
    sd = parse_sdp(edit(IMS_OFFER, replace=changes))
    with pytest.raises(SdpError) as info:
        parse_datachannel_offer(sd, 1)
    err = info.value
    assert not isinstance(err, SdpNotAcceptable)
    assert err.status == 400 and fragment in err.detail
    # A deleted c= line shifts the m-line up by one.
    assert err.line == (line - 1 if "c=" in changes else line)


def test_ice_ufrag_without_pwd_is_400() -> None:
    sd = parse_sdp(edit(BROWSER_OFFER, replace={"a=ice-pwd": None}))
    with pytest.raises(SdpError, match="ice-pwd must both be present"):
        parse_datachannel_offer(sd, 0)


@pytest.mark.parametrize(
    ("changes", "code", "fragment"),
    [
        ({"a=fingerprint": None}, 399, "no a=fingerprint"),
        ({"a=fingerprint": "a=fingerprint:md5 00:11"}, 399, "supported hash"),
        ({"m=application": "m=application 49180 DTLS/SCTP 5000"}, 302, "legacy"),
        ({"m=application": "m=application 49180 TCP/DTLS/SCTP webrtc-datachannel"}, 302, "TCP"),
        ({"m=application": "m=application 49180 UDP/DTLS/SCTP bfcp"}, 305, "format"),
        ({"c=": "c=IN IP4 224.2.1.1/127"}, 330, "multicast"),
        ({"c=": "c=ATM NSAP 47.0091"}, 300, "network type"),
    ],
)
def test_unusable_data_channel_is_488(
    changes: dict[str, str | None], code: int, fragment: str
) -> None:
    sd = parse_sdp(edit(IMS_OFFER, replace=changes))
    with pytest.raises(SdpNotAcceptable) as info:
        parse_datachannel_offer(sd, 1)
    assert info.value.status == 488 and info.value.warning.code == code
    assert fragment in info.value.detail


def test_audio_m_line_is_not_a_data_channel() -> None:
    with pytest.raises(SdpNotAcceptable) as info:
        parse_datachannel_offer(parse_sdp(IMS_OFFER), 0)
    assert info.value.warning.code == 304 and info.value.line == IMS_LINE["m=audio"]


# --- stream policy -----------------------------------------------------------------------------


def test_default_policy_on_fixture_streams() -> None:
    dc = parse_datachannel_offer(parse_sdp(IMS_OFFER), 1)
    accepted, rejected = accept_streams(dc.dcmaps)
    assert [d.stream_id for d in accepted] == [0, 10, 1000, 1002]
    assert {r.dcmap.stream_id: r.reason for r in rejected} == {
        38754: "application stream 38754 has no subprotocol",
        7216: "application stream 7216 has no subprotocol",
    }


def test_default_policy_rules() -> None:
    offered = [
        DcMap(0, subprotocol="HTTP"),
        DcMap(10, subprotocol="other"),
        DcMap(100, subprotocol="http"),
        DcMap(110),
        DcMap(5, subprotocol="http"),
        DcMap(999, subprotocol="3gpp-ar-metadata"),
        DcMap(1000, subprotocol="3gpp-ar-metadata"),
        DcMap(1001, subprotocol="anything"),
        DcMap(2000, subprotocol="3gpp-ar-animation"),
        DcMap(2000, subprotocol="3gpp-ar-animation", label="dup"),
    ]
    decision = accept_streams(offered)
    assert [d.stream_id for d in decision.accepted] == [0, 100, 1000, 1001]
    reasons = {(r.dcmap.stream_id, r.dcmap.label): r.reason for r in decision.rejected}
    assert "needs subprotocol http" in reasons[(10, None)]
    assert "needs subprotocol http" in reasons[(110, None)]
    assert "neither a bootstrap id" in reasons[(5, None)]
    assert "neither a bootstrap id" in reasons[(999, None)]
    assert "more than once" in reasons[(2000, None)]
    assert "more than once" in reasons[(2000, "dup")]


def test_tuned_policy() -> None:
    policy = StreamPolicy(
        bootstrap_ids=frozenset({10}),
        min_application_id=2,
        application_subprotocols=frozenset({"3gpp-ar-animation"}),
        require_subprotocol=False,
    )
    accepted, rejected = accept_streams(
        [
            DcMap(0, subprotocol="http"),
            DcMap(2, subprotocol="3GPP-AR-ANIMATION"),
            DcMap(3),
            DcMap(4, subprotocol="3gpp-ar-metadata"),
        ],
        policy=policy,
    )
    assert [d.stream_id for d in accepted] == [2, 3]
    assert [r.dcmap.stream_id for r in rejected] == [0, 4]
    assert "not supported" in rejected[1].reason


def test_format_fingerprint_is_formatted_once_per_fingerprint() -> None:
    # Every answer carries the node's fingerprint: formatted once, then served from a cache.
    fp = Fingerprint("sha-256", bytes(range(100, 132)))
    before = format_fingerprint.cache_info()
    first = format_fingerprint(fp)
    again = format_fingerprint(Fingerprint("sha-256", bytes(range(100, 132))))
    assert again is first
    assert first == "sha-256 " + ":".join(f"{b:02X}" for b in range(100, 132))
    assert format_fingerprint.cache_info().hits >= before.hits + 1
