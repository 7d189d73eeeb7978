"""STUN messages (media/stun.py) against the RFC 5769 test vectors and aioice's codec."""

from __future__ import annotations

import struct

import pytest
from aioice import stun as aioice_stun

from avatar_mf.media import stun

# RFC 5769 section 2: the short-term password of every sample, and the samples themselves.
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
SAMPLE_REQUEST = bytes.fromhex(  # 2.1
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e7400"
    "2400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aea"
    "a70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
SAMPLE_IPV4_RESPONSE = bytes.fromhex(  # 2.2
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001"
    "a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96"
)
SAMPLE_IPV6_RESPONSE = bytes.fromhex(  # 2.3
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002"
    "a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
SAMPLES = [
    pytest.param(SAMPLE_REQUEST, id="request"),
    pytest.param(SAMPLE_IPV4_RESPONSE, id="ipv4-response"),
    pytest.param(SAMPLE_IPV6_RESPONSE, id="ipv6-response"),
]
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def _at(data: bytes, kind: int) -> int:
    """Offset of the first attribute ``kind`` in ``data`` (walked by hand, not by stun.py)."""
    offset = 20
    while offset < len(data):
        found, length = struct.unpack_from("!HH", data, offset)
        if found == kind:
            return offset
        offset += 4 + length + (-length % 4)
    raise AssertionError(f"no attribute {kind:#x}")


def test_sample_request_parses_and_authenticates() -> None:
    message = stun.parse(SAMPLE_REQUEST)
    assert message is not None and message.fingerprinted
    assert message.message_type == stun.BINDING_REQUEST and message.transaction_id == TXID
    assert message.get(stun.SOFTWARE) == b"STUN test client"
    assert message.get(stun.USERNAME) == b"evtj:h6vY"
    assert message.get(stun.PRIORITY) == bytes.fromhex("6e0001ff")
    assert message.get(stun.ICE_CONTROLLED) == bytes.fromhex("932ff9b151263b36")
    assert message.get(stun.ICE_CONTROLLING) is None
    assert stun.check_integrity(SAMPLE_REQUEST, message, PASSWORD)
    assert not stun.check_integrity(SAMPLE_REQUEST, message, PASSWORD[:-1] + b"u")


@pytest.mark.parametrize(
    ("sample", "address"),
    [
        pytest.param(SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853), id="ipv4"),
        pytest.param(
            SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853), id="ipv6"
        ),
    ],
)
def test_sample_responses_carry_their_mapped_address(
    sample: bytes, address: tuple[str, int]
) -> None:
    message = stun.parse(sample)
    assert message is not None and message.message_type == stun.BINDING_SUCCESS
    assert stun.check_integrity(sample, message, PASSWORD)
    value = message.get(stun.XOR_MAPPED_ADDRESS)
    assert value is not None
    assert stun.read_xor_address(value, TXID) == address
    # Encoding the address gives the sample's bytes.
    assert stun.xor_address(address, TXID) == value


@pytest.mark.parametrize("sample", SAMPLES)
def test_integrity_and_fingerprint_reproduce_the_samples(sample: bytes) -> None:
    mi = _at(sample, stun.MESSAGE_INTEGRITY)
    assert stun.message_integrity(sample[:mi], PASSWORD) == sample[mi + 4 : mi + 24]
    fp = _at(sample, stun.FINGERPRINT)
    assert stun.fingerprint(sample[:fp]).to_bytes(4, "big") == sample[fp + 4 : fp + 8]


@pytest.mark.parametrize("sample", SAMPLES)
def test_any_flipped_bit_fails_the_fingerprint(sample: bytes) -> None:
    """RFC 8489 7.3: a datagram whose FINGERPRINT does not match is not STUN (dropped); one
    whose FINGERPRINT attribute lost its type has none (an ICE agent drops it too)."""
    for index in range(20, len(sample)):
        damaged = bytearray(sample)
        damaged[index] ^= 0x01
        message = stun.parse(bytes(damaged))
        assert message is None or not message.fingerprinted, index


def test_malformed_messages_are_not_stun() -> None:
    ok = SAMPLE_REQUEST
    assert stun.parse(ok) is not None
    assert stun.parse(ok[:19]) is None  # shorter than a header
    assert stun.parse(ok + b"\0\0") is None  # not a multiple of 4
    assert stun.parse(ok + b"\0\0\0\0") is None  # length field disagrees
    assert stun.parse(b"\x40" + ok[1:]) is None  # top bits not zero
    assert stun.parse(ok[:4] + b"\x21\x12\xa4\x43" + ok[8:]) is None  # no magic cookie
    # An attribute running past the end.
    overrun = stun.serialize(stun.BINDING_REQUEST, TXID, ((stun.USERNAME, b"ab:cd"),), key=None)
    overrun = overrun[:22] + b"\x00\xff" + overrun[24:]
    assert stun.parse(overrun) is None
    # A FINGERPRINT that is not the last attribute.
    fp = _at(ok, stun.FINGERPRINT)
    body = ok[20:] + ok[fp : fp + 8]
    assert stun.parse(ok[:2] + len(body).to_bytes(2, "big") + ok[4:20] + body) is None


def test_a_message_with_too_many_attributes_is_dropped() -> None:
    many = tuple((stun.SOFTWARE, b"x") for _ in range(stun.MAX_ATTRIBUTES + 1))
    assert stun.parse(stun.serialize(stun.BINDING_REQUEST, TXID, many, key=None)) is None
    fewer = many[: stun.MAX_ATTRIBUTES - 1]  # FINGERPRINT is the last one
    assert stun.parse(stun.serialize(stun.BINDING_REQUEST, TXID, fewer, key=None)) is not None


def test_attributes_after_message_integrity_are_ignored() -> None:
    """RFC 8489 14.5: only FINGERPRINT may follow MESSAGE-INTEGRITY."""
    request = aioice_stun.Message(
        aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST, transaction_id=TXID
    )
    request.attributes["USERNAME"] = "a:b"
    request.add_message_integrity(PASSWORD)
    request.attributes.pop("FINGERPRINT")
    request.attributes["PRIORITY"] = 5  # after MESSAGE-INTEGRITY: not authenticated
    request.add_fingerprint()
    data = bytes(request)
    message = stun.parse(data)
    assert message is not None and message.get(stun.PRIORITY) is None
    assert stun.check_integrity(data, message, PASSWORD)


@pytest.mark.parametrize("key", [PASSWORD, None])
def test_serialized_messages_read_by_aioice(key: bytes | None) -> None:
    data = stun.serialize(
        stun.BINDING_ERROR,
        TXID,
        (
            (stun.ERROR_CODE, stun.error_code(420, "Unknown Attribute")),
            (stun.UNKNOWN_ATTRIBUTES, stun.unknown_attributes((0x0003, 0x7FFF))),
            (stun.XOR_MAPPED_ADDRESS, stun.xor_address(("::1", 5000), TXID)),
        ),
        key=key,
    )
    message = aioice_stun.parse_message(data)  # checks the FINGERPRINT
    assert message.message_class == aioice_stun.Class.ERROR
    assert message.transaction_id == TXID
    assert message.attributes["ERROR-CODE"] == (420, "Unknown Attribute")
    assert message.attributes["XOR-MAPPED-ADDRESS"] == ("::1", 5000)
    assert message.check_message_integrity(PASSWORD) == (key is not None)
    unknown = data[_at(data, stun.UNKNOWN_ATTRIBUTES) + 4 :][:4]
    assert unknown == bytes.fromhex("00037fff")


def test_demultiplexing_first_byte() -> None:
    """RFC 7983 section 7."""
    assert [stun.is_stun(bytes([b])) for b in (0, 3, 4, 20, 128)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert not stun.is_stun(b"")
