"""Data channel SDP: the ``m=application ... UDP/DTLS/SCTP webrtc-datachannel`` media description.

Implements, as pure functions over :mod:`avatar_mf.sdp.model` objects:

* RFC 8841 (SCTP over DTLS in SDP): section 4.1 proto ``UDP/DTLS/SCTP`` with the single format
  ``webrtc-datachannel``; section 5 ``a=sctp-port`` (default 5000 when absent) and section 6
  ``a=max-message-size`` (default 65536 when absent, 0 = no limit).
* RFC 8864 (SDP-based data channel negotiation): section 5.1 ``a=dcmap`` with ``label``,
  ``subprotocol`` (quoted-visible-string with ``%HH`` escapes of UTF-8 octets), ``ordered``,
  ``max-retr`` / ``max-time`` (both together is invalid) and ``priority``; section 5.2
  ``a=dcsa`` (an SDP attribute scoped to one stream).
* RFC 8122 section 5 ``a=fingerprint`` (hash function names case-insensitive, hex case
  insensitive on input, upper-case with colons on output) and RFC 4145 section 4 ``a=setup``
  (``active`` when absent).
* RFC 8842 section 4 ``a=tls-id``.
* RFC 8839 section 5 ICE attributes (``ice-ufrag``, ``ice-pwd``, ``candidate``, ``ice-lite``,
  ``ice-options``, ``end-of-candidates``); real IMS offers often carry none (DTLS straight over
  the ``c=``/``m=`` address): :attr:`DataChannelOffer.ice` is then ``None``.
* 3GPP TS 26.114 clause 6.2.10 / TS 24.186: bootstrap streams 0 and 10 (local network) and 100
  and 110 (remote network) with ``subprotocol="http"``, ``a=3gpp-bdc-used-by``, application
  streams with ids >= 1000 (:class:`StreamPolicy`, :func:`accept_streams`).

:func:`parse_fingerprint`, :func:`parse_dcmap` and :func:`parse_dcsa` are cached
(``functools.lru_cache``, for values up to 512 characters): they are pure, their results are
frozen, and every offer of a given UE model repeats the same lines.

Choices where the RFCs leave room (documented here, relied on by tests):

* Only ``UDP/DTLS/SCTP`` is accepted. The legacy ``DTLS/SCTP <port>`` + ``a=sctpmap`` form
  (draft-ietf-mmusic-sctp-sdp before RFC 8841) and ``TCP/DTLS/SCTP`` are rejected with a 488
  reason (warn-code 302): TS 26.114 mandates ``UDP/DTLS/SCTP``.
* ``c=``, ``a=fingerprint``, ``a=setup``, ``a=tls-id``, ``a=ice-ufrag``/``ice-pwd``,
  ``a=ice-options`` and ``a=end-of-candidates`` are looked up at media level first, then at
  session level. Fingerprints with hash functions the MF cannot verify (anything but sha-1,
  sha-256, sha-384, sha-512) are dropped; an offer left with none is not acceptable.
* ``ordered`` accepts ``true``/``false`` (the RFC 8864 ABNF) and ``1``/``0`` (what TS 26.114
  examples and deployed UEs send); :func:`format_dcmap` writes ``ordered=1``/``ordered=0``
  unless told otherwise. Unknown dcmap parameters are kept in :attr:`DcMap.extensions`.
  Unquoted ``label``/``subprotocol`` values are accepted. Stream ids are 0..65534 (65535 is
  reserved by RFC 8831 section 6.5). The even/odd stream id rule of RFC 8832 (DCEP) is not
  enforced: IMS uses even ids for both directions.
* ``a=tls-id`` is checked against the RFC 8842 character set but its 20-character minimum is
  not enforced (field UEs send 16 hex digits).
* The ``c=`` connection-address (RFC 8866 section 5.7) must be an IP literal of its address
  type (``IP4``: dotted quad, ``IP6``: an IPv6 address) or a host name (RFC 1123 labels);
  anything else is not acceptable (488, warn-code 301), in an offer and in a re-offer.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeVar

from avatar_mf.lru import cached_parser
from avatar_mf.sdp.addresses import ip_literal
from avatar_mf.sdp.errors import (
    WARN_INCOMPATIBLE_ADDRESS_FORMAT,
    WARN_INCOMPATIBLE_MEDIA_FORMAT,
    WARN_INCOMPATIBLE_NETWORK_PROTOCOL,
    WARN_INCOMPATIBLE_TRANSPORT,
    WARN_MEDIA_TYPE_NOT_AVAILABLE,
    WARN_MISCELLANEOUS,
    WARN_MULTICAST_NOT_AVAILABLE,
    SdpError,
    SdpNotAcceptable,
)
from avatar_mf.sdp.model import (
    Attribute,
    Bandwidth,
    MediaDescription,
    SessionDescription,
    is_digits,
    is_token,
)

PROTO: Final = "UDP/DTLS/SCTP"
FORMAT: Final = "webrtc-datachannel"
DEFAULT_SCTP_PORT: Final = 5000
DEFAULT_MAX_MESSAGE_SIZE: Final = 65536
MAX_STREAM_ID: Final = 65534
_U32_MAX: Final = 0xFFFFFFFF
_U16_MAX: Final = 0xFFFF

Setup = Literal["active", "passive", "actpass", "holdconn"]
LocalSetup = Literal["active", "passive"]
_SETUP_VALUES: Final[dict[str, Setup]] = {
    "active": "active",
    "passive": "passive",
    "actpass": "actpass",
    "holdconn": "holdconn",
}
_T = TypeVar("_T")

#: Hash functions the MF can verify, with their digest length in bytes (RFC 8122 section 5).
HASH_LENGTHS: Final[dict[str, int]] = {"sha-1": 20, "sha-256": 32, "sha-384": 48, "sha-512": 64}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_TLS_ID_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
)
_ICE_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
#: Values kept by each of the cached attribute parsers (:func:`parse_fingerprint`,
#: :func:`parse_dcmap`, :func:`parse_dcsa`): pure functions returning frozen values, and the
#: same UE model sends the same lines in every offer. Longer values are parsed every time, so
#: that a peer cannot make the caches large.
_PARSE_CACHE_SIZE: Final = 512
_PARSE_CACHE_MAX_LENGTH: Final = 512


_cached = cached_parser(size=_PARSE_CACHE_SIZE, max_length=_PARSE_CACHE_MAX_LENGTH)


# --------------------------------------------------------------------------------------------
# a=fingerprint (RFC 8122 section 5)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A certificate fingerprint: ``hash_func`` in lower case (``"sha-256"``), raw digest."""

    hash_func: str
    value: bytes

    def __post_init__(self) -> None:
        if self.hash_func != self.hash_func.lower():  # "SHA-256" from a caller: normalise
            object.__setattr__(self, "hash_func", self.hash_func.lower())

    @property
    def supported(self) -> bool:
        """True when the MF can verify this hash function (:data:`HASH_LENGTHS`)."""
        return self.hash_func in HASH_LENGTHS

    @classmethod
    def of_certificate(cls, der: bytes, hash_func: str = "sha-256") -> Fingerprint:
        """The fingerprint of a DER encoded certificate."""
        func = hash_func.lower()
        if func not in HASH_LENGTHS:
            raise ValueError(f"unsupported fingerprint hash function {hash_func!r}")
        return cls(func, hashlib.new(func.replace("-", ""), der).digest())

    def matches_certificate(self, der: bytes) -> bool:
        """Constant-time check of a peer's DER certificate against this fingerprint.

        Works for sha-1 too (aiortc itself only verifies sha-256/384/512).
        """
        if not self.supported:
            return False
        digest = hashlib.new(self.hash_func.replace("-", ""), der).digest()
        return hmac.compare_digest(digest, self.value)

    def __str__(self) -> str:
        return format_fingerprint(self)


@_cached
def parse_fingerprint(value: str) -> Fingerprint:
    """Parse ``<hash-func> <XX:XX:...>``. Unknown hash functions parse (``supported`` False);
    a digest of the wrong length for a known one, or bad hex, raises :class:`SdpError`."""
    parts = value.split()
    if len(parts) != 2:
        raise SdpError(f"bad a=fingerprint {value[:60]!r}: expected '<hash-func> <hex>'")
    func, hex_text = parts[0].lower(), parts[1]
    if not is_token(func):
        raise SdpError(f"bad a=fingerprint hash function {parts[0][:20]!r}")
    octets = hex_text.split(":")
    if not all(len(o) == 2 and o[0] in _HEX and o[1] in _HEX for o in octets):
        raise SdpError(
            f"bad a=fingerprint {value[:60]!r}: the digest must be hex octets separated by ':'"
        )
    digest = bytes(int(o, 16) for o in octets)
    expected = HASH_LENGTHS.get(func)
    if expected is not None and len(digest) != expected:
        raise SdpError(
            f"bad a=fingerprint: a {func} digest has {expected} octets, got {len(digest)}"
        )
    return Fingerprint(func, digest)


@functools.lru_cache(maxsize=16)
def format_fingerprint(fp: Fingerprint) -> str:
    """``sha-256 AB:CD:...`` (upper-case hex, RFC 8122 section 5). Cached: every answer
    carries the node's own fingerprint (~4 us a call to format; issue 16)."""
    return f"{fp.hash_func} " + fp.value.hex(":").upper()


# --------------------------------------------------------------------------------------------
# a=dcmap (RFC 8864 section 5.1)


@dataclass(frozen=True, slots=True)
class DcMap:
    """One ``a=dcmap`` line: an SDP-negotiated data channel on SCTP stream ``stream_id``.

    ``ordered`` defaults to True when the parameter is absent (RFC 8864 section 5.1.5).
    ``max_retr`` and ``max_time`` are mutually exclusive; both ``None`` means reliable.
    ``extensions`` keeps unknown ``name=value`` parameters verbatim, in order.
    """

    stream_id: int
    label: str | None = None
    subprotocol: str | None = None
    ordered: bool = True
    max_retr: int | None = None
    max_time: int | None = None
    priority: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.stream_id <= MAX_STREAM_ID:
            raise ValueError(f"dcmap stream id {self.stream_id} outside 0..{MAX_STREAM_ID}")
        if self.max_retr is not None and self.max_time is not None:
            raise ValueError("dcmap max-retr and max-time are mutually exclusive (RFC 8864)")

    @property
    def reliable(self) -> bool:
        return self.max_retr is None and self.max_time is None

    def __str__(self) -> str:
        return format_dcmap(self)


def _split_params(text: str) -> list[str]:
    """Split at ``;`` outside double quotes (the quotes are kept); raise on an unterminated
    quote."""
    if '"' not in text:
        return text.split(";")
    # Between the quote characters, pieces alternate: outside, quoted, outside, ...
    pieces = text.split('"')
    if len(pieces) % 2 == 0:
        raise SdpError(f"bad a=dcmap: unterminated quoted string in {text[:60]!r}")
    parts: list[str] = []
    current = ""
    for i, piece in enumerate(pieces):
        if i % 2:
            current += f'"{piece}"'
            continue
        cut = piece.split(";")
        current += cut[0]
        if len(cut) > 1:
            parts.append(current)
            parts.extend(cut[1:-1])
            current = cut[-1]
    parts.append(current)
    return parts


def _unquote(raw: str, name: str) -> str:
    """Decode a quoted-visible-string (or, leniently, an unquoted value) with %HH escapes."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise SdpError(f"bad a=dcmap {name}: badly quoted value {raw[:40]!r}")
        inner = raw[1:-1]
        if '"' in inner:
            raise SdpError(f"bad a=dcmap {name}: stray '\"' in {raw[:40]!r}")
    else:
        inner = raw
        if not inner or any(ch in ' "' for ch in inner):
            raise SdpError(f"bad a=dcmap {name}: value must be a quoted string, got {raw[:40]!r}")
    if "%" not in inner and inner.isascii() and inner.isprintable():
        return inner  # printable ASCII without escapes decodes to itself (the usual case)
    out = bytearray()
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "%":
            pair = inner[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise SdpError(f"bad a=dcmap {name}: '%' must be followed by two hex digits")
            out.append(int(pair, 16))
            i += 3
            continue
        if ch < " " or ch == "\x7f":
            raise SdpError(f"bad a=dcmap {name}: control character {ch!r} must be %-escaped")
        out.extend(ch.encode("utf-8", "surrogatepass"))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError(f"bad a=dcmap {name}: %-escapes are not valid UTF-8") from None


def _quote(text: str) -> str:
    """Encode as a quoted-visible-string: printable ASCII except ``"`` and ``%`` as is,
    everything else as %HH of its UTF-8 octets (RFC 8864 section 5.1.3)."""
    out: list[str] = []
    for ch in text:
        if " " <= ch <= "~" and ch not in '"%':
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return '"' + "".join(out) + '"'


def _dcmap_int(raw: str, name: str, maximum: int) -> int:
    if not is_digits(raw, 10) or int(raw) > maximum:
        raise SdpError(f"bad a=dcmap {name}={raw[:20]!r}: expected an integer 0..{maximum}")
    return int(raw)


@_cached
def parse_dcmap(value: str) -> DcMap:
    """Parse the value of an ``a=dcmap`` attribute, e.g.
    ``1002 label="avatar-anim-1";subprotocol="3gpp-ar-animation";ordered=1;max-time=150``.

    Raises :class:`SdpError` (never anything else) on malformed input.
    """
    text = value.strip()
    id_text, _, rest = text.partition(" ")
    if not is_digits(id_text, 5) or int(id_text) > MAX_STREAM_ID:
        raise SdpError(
            f"bad a=dcmap {value[:60]!r}: stream id must be an integer 0..{MAX_STREAM_ID}"
        )
    fields: dict[str, str] = {}
    extensions: list[tuple[str, str]] = []
    for part in _split_params(rest):
        param = part.strip()
        if not param:
            continue
        name, eq, raw = param.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if not eq or not is_token(name):
            raise SdpError(f"bad a=dcmap parameter {param[:40]!r}: expected name=value")
        if name in fields or any(n.lower() == name for n, _ in extensions):
            raise SdpError(f"bad a=dcmap: parameter {name!r} appears twice")
        if name in ("label", "subprotocol", "ordered", "max-retr", "max-time", "priority"):
            fields[name] = raw
        else:
            extensions.append((name, raw))

    ordered = True
    if "ordered" in fields:
        flag = fields["ordered"].lower()
        if flag in ("1", "true"):
            ordered = True
        elif flag in ("0", "false"):
            ordered = False
        else:
            raise SdpError(f"bad a=dcmap ordered={fields['ordered'][:20]!r}: expected true/false")
    if "max-retr" in fields and "max-time" in fields:
        raise SdpError("bad a=dcmap: max-retr and max-time must not both be present (RFC 8864 5.1)")
    return DcMap(
        stream_id=int(id_text),
        label=_unquote(fields["label"], "label") if "label" in fields else None,
        subprotocol=(
            _unquote(fields["subprotocol"], "subprotocol") if "subprotocol" in fields else None
        ),
        ordered=ordered,
        max_retr=_dcmap_int(fields["max-retr"], "max-retr", _U32_MAX)
        if "max-retr" in fields
        else None,
        max_time=_dcmap_int(fields["max-time"], "max-time", _U32_MAX)
        if "max-time" in fields
        else None,
        priority=_dcmap_int(fields["priority"], "priority", _U16_MAX)
        if "priority" in fields
        else None,
        extensions=tuple(extensions),
    )


def format_dcmap(dcmap: DcMap, *, ordered_style: Literal["numeric", "word"] = "numeric") -> str:
    """The ``a=dcmap`` value for ``dcmap``. ``ordered`` is always written explicitly, as
    ``1``/``0`` (TS 26.114 style) or, with ``ordered_style="word"``, ``true``/``false``
    (RFC 8864 ABNF)."""
    opts: list[str] = []
    if dcmap.label is not None:
        opts.append(f"label={_quote(dcmap.label)}")
    if dcmap.subprotocol is not None:
        opts.append(f"subprotocol={_quote(dcmap.subprotocol)}")
    if ordered_style == "numeric":
        opts.append(f"ordered={1 if dcmap.ordered else 0}")
    else:
        opts.append(f"ordered={'true' if dcmap.ordered else 'false'}")
    if dcmap.max_retr is not None:
        opts.append(f"max-retr={dcmap.max_retr}")
    if dcmap.max_time is not None:
        opts.append(f"max-time={dcmap.max_time}")
    if dcmap.priority is not None:
        opts.append(f"priority={dcmap.priority}")
    opts.extend(f"{name}={raw}" for name, raw in dcmap.extensions)
    return f"{dcmap.stream_id} " + ";".join(opts)


# --------------------------------------------------------------------------------------------
# a=dcsa (RFC 8864 section 5.2)


@dataclass(frozen=True, slots=True)
class DcSa:
    """``a=dcsa:<stream-id> <attribute>``: an SDP attribute for one stream, kept verbatim
    (e.g. ``DcSa(1000, "3gpp-req-app:avatar")``)."""

    stream_id: int
    attribute: str

    @property
    def name(self) -> str:
        return self.attribute.partition(":")[0]

    @property
    def value(self) -> str | None:
        name, sep, value = self.attribute.partition(":")
        return value if sep else None

    def __str__(self) -> str:
        return format_dcsa(self)


@_cached
def parse_dcsa(value: str) -> DcSa:
    """Parse the value of an ``a=dcsa`` attribute. Raises :class:`SdpError`."""
    id_text, _, attribute = value.strip().partition(" ")
    if not is_digits(id_text, 5) or int(id_text) > MAX_STREAM_ID:
        raise SdpError(
            f"bad a=dcsa {value[:60]!r}: stream id must be an integer 0..{MAX_STREAM_ID}"
        )
    attribute = attribute.strip()
    if not attribute or not attribute.partition(":")[0]:
        raise SdpError(f"bad a=dcsa {value[:60]!r}: missing the stream's attribute")
    return DcSa(int(id_text), attribute)


def format_dcsa(dcsa: DcSa) -> str:
    return f"{dcsa.stream_id} {dcsa.attribute}"


# --------------------------------------------------------------------------------------------
# tls-id (RFC 8842 section 4)


def is_tls_id(value: str) -> bool:
    """RFC 8842 tls-id characters, 1..255 long (the 20-character minimum is not enforced)."""
    return 0 < len(value) <= 255 and all(ch in _TLS_ID_CHARS for ch in value)


def generate_tls_id(token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh tls-id (32 characters of URL-safe base64: RFC 8842 allows ``-`` and ``_``)."""
    return base64.urlsafe_b64encode(token_bytes(24)).decode("ascii")


# --------------------------------------------------------------------------------------------
# The data channel m-line of an offer


@dataclass(frozen=True, slots=True)
class IceParams:
    """ICE parameters of one side (RFC 8839 section 5). ``candidates`` are raw
    ``a=candidate`` values; ``options`` the ``a=ice-options`` tokens (e.g. ``trickle``)."""

    ufrag: str
    pwd: str
    candidates: tuple[str, ...] = ()
    ice_lite: bool = False
    end_of_candidates: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataChannelOffer:
    """What the remote side offers in one data channel media description.

    ``index`` is the 0-based m-line index. ``remote_address``/``remote_port`` come from the
    ``c=`` (media, else session) and ``m=`` lines: with ICE they are only the default
    candidate. ``setup`` is ``"active"`` when the offer has no ``a=setup`` (RFC 4145
    section 4). ``fingerprints`` holds only fingerprints with a supported hash function.
    ``bootstrap_used_by`` is the media-level ``a=3gpp-bdc-used-by`` value, if any.
    """

    index: int
    media: MediaDescription
    remote_address: str
    remote_addrtype: str
    remote_port: int
    sctp_port: int
    max_message_size: int
    setup: Setup
    fingerprints: tuple[Fingerprint, ...]
    tls_id: str | None
    ice: IceParams | None
    dcmaps: tuple[DcMap, ...]
    dcsas: tuple[DcSa, ...]
    bootstrap_used_by: str | None
    mid: str | None
    bandwidths: tuple[Bandwidth, ...]


def _lookup(md: MediaDescription, sd: SessionDescription, name: str) -> tuple[Attribute, ...]:
    """Media-level attributes called ``name``, else the session-level ones."""
    return md.attributes(name) or sd.attributes(name)


def _single(attrs: tuple[Attribute, ...], name: str, line: int | None) -> Attribute | None:
    if not attrs:
        return None
    values = {a.value for a in attrs}
    if len(values) > 1:
        raise SdpError(f"conflicting a={name} lines", line=attrs[1].line or line)
    first = attrs[0]
    if first.value is None or not first.value.strip():
        raise SdpError(f"a={name} needs a value", line=first.line or line)
    return first


def _at(attr: Attribute, fallback: int | None, fn: Callable[[str], _T]) -> _T:
    """Run a value parser, re-raising its error with the attribute's line number."""
    try:
        return fn(attr.value or "")
    except SdpError as err:
        raise SdpError(err.detail, line=attr.line or fallback) from None


_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_connection_address(addrtype: str, address: str) -> bool:
    """Whether ``address`` is a usable unicast ``c=`` address of ``addrtype`` (``IP4``/``IP6``):
    an IP literal of that family, or a host name (RFC 8866 5.7 allows an FQDN)."""
    ip = ip_literal(address)
    if ip is not None:
        return ip.version == (4 if addrtype.upper() == "IP4" else 6)
    if not address or len(address) > 253:
        return False
    labels = address.removesuffix(".").split(".")
    if labels[-1].isdigit():  # 1.2.3.999 is a broken literal, not a host name
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


def _not_acceptable(where: str, detail: str, code: int, line: int | None) -> SdpNotAcceptable:
    return SdpNotAcceptable(f"{where}: {detail}", warn_code=code, line=line)


def check_datachannel_media(md: MediaDescription, index: int) -> None:
    """Raise :class:`SdpNotAcceptable` unless ``md`` is a UDP/DTLS/SCTP data channel m-line."""
    where = f"m-line {index + 1} ({md.media} {md.proto})"
    if md.media.lower() != "application":
        raise _not_acceptable(
            where,
            "only m=application data channels are accepted",
            WARN_MEDIA_TYPE_NOT_AVAILABLE,
            md.line,
        )
    proto = md.proto.upper()
    if proto != PROTO:
        if proto == "DTLS/SCTP":
            detail = "legacy DTLS/SCTP data channels are not supported, use UDP/DTLS/SCTP"
        elif proto == "TCP/DTLS/SCTP":
            detail = "data channels over TCP are not supported, use UDP/DTLS/SCTP"
        else:
            detail = f"transport {md.proto} is not supported, use {PROTO} (RFC 8841)"
        raise _not_acceptable(where, detail, WARN_INCOMPATIBLE_TRANSPORT, md.line)
    if [f.lower() for f in md.formats] != [FORMAT]:
        raise _not_acceptable(
            where,
            f"the only format accepted is {FORMAT} (RFC 8841 section 4.1)",
            WARN_INCOMPATIBLE_MEDIA_FORMAT,
            md.line,
        )


def parse_datachannel_offer(sd: SessionDescription, index: int) -> DataChannelOffer:
    """Extract the data channel offer of media description ``index`` of ``sd``.

    Raises :class:`SdpError` (400) when an attribute the MF must interpret is malformed
    (dcmap, dcsa, fingerprint, setup, tls-id, sctp-port, max-message-size, ICE), and
    :class:`SdpNotAcceptable` (488) when the m-line is well-formed but unusable (not a
    ``UDP/DTLS/SCTP webrtc-datachannel`` line, multicast, no usable fingerprint).
    """
    md = sd.media[index]
    line = md.line
    where = f"m-line {index + 1} ({md.media} {md.proto})"
    check_datachannel_media(md, index)

    conn = sd.connection_for(index)
    if conn is None:
        raise SdpError(f"{where}: no c= line at session or media level (RFC 8866 5.7)", line=line)
    if conn.nettype.upper() != "IN":
        raise _not_acceptable(
            where,
            f"network type {conn.nettype} is not IN",
            WARN_INCOMPATIBLE_NETWORK_PROTOCOL,
            line,
        )
    if conn.addrtype.upper() not in ("IP4", "IP6"):
        raise _not_acceptable(
            where,
            f"address type {conn.addrtype} is not IP4/IP6",
            WARN_INCOMPATIBLE_ADDRESS_FORMAT,
            line,
        )
    if conn.is_multicast_form:
        raise _not_acceptable(
            where, f"multicast address {conn.address}", WARN_MULTICAST_NOT_AVAILABLE, line
        )
    if not is_connection_address(conn.addrtype, conn.address):
        raise _not_acceptable(
            where,
            f"connection address {conn.address[:64]!r} is not an {conn.addrtype.upper()} "
            "address or a host name",
            WARN_INCOMPATIBLE_ADDRESS_FORMAT,
            line,
        )

    sctp_port = DEFAULT_SCTP_PORT
    attr = _single(md.attributes("sctp-port"), "sctp-port", line)
    if attr is not None:
        text = (attr.value or "").strip()
        if not is_digits(text, 5) or not 0 < int(text) <= 65535:
            raise SdpError(f"bad a=sctp-port {text[:20]!r}", line=attr.line or line)
        sctp_port = int(text)

    max_message_size = DEFAULT_MAX_MESSAGE_SIZE
    attr = _single(md.attributes("max-message-size"), "max-message-size", line)
    if attr is not None:
        text = (attr.value or "").strip()
        if not is_digits(text):
            raise SdpError(f"bad a=max-message-size {text[:20]!r}", line=attr.line or line)
        max_message_size = int(text)

    setup: Setup = "active"
    attr = _single(_lookup(md, sd, "setup"), "setup", line)
    if attr is not None:
        role = (attr.value or "").strip().lower()
        if role not in _SETUP_VALUES:
            raise SdpError(
                f"bad a=setup {role[:20]!r}: expected active, passive, actpass or holdconn "
                "(RFC 4145 section 4)",
                line=attr.line or line,
            )
        setup = _SETUP_VALUES[role]

    parsed_fps: list[Fingerprint] = []
    for attr in _lookup(md, sd, "fingerprint"):
        parsed_fps.append(_at(attr, line, parse_fingerprint))
    if not parsed_fps:
        raise _not_acceptable(
            where,
            "no a=fingerprint (RFC 8841 section 5.1, RFC 8122 section 5)",
            WARN_MISCELLANEOUS,
            line,
        )
    fingerprints = tuple(fp for fp in parsed_fps if fp.supported)
    if not fingerprints:
        funcs = ", ".join(sorted({fp.hash_func for fp in parsed_fps}))
        raise _not_acceptable(
            where,
            f"no a=fingerprint with a supported hash function (got {funcs})",
            WARN_MISCELLANEOUS,
            line,
        )

    tls_id: str | None = None
    attr = _single(_lookup(md, sd, "tls-id"), "tls-id", line)
    if attr is not None:
        tls_id = (attr.value or "").strip()
        if not is_tls_id(tls_id):
            raise SdpError(
                f"bad a=tls-id {tls_id[:40]!r} (RFC 8842 section 4)", line=attr.line or line
            )

    ice = _parse_ice(md, sd, line)

    dcmaps: list[DcMap] = []
    for attr in md.attributes("dcmap"):
        dcmaps.append(_at(attr, line, parse_dcmap))
    dcsas: list[DcSa] = []
    for attr in md.attributes("dcsa"):
        dcsas.append(_at(attr, line, parse_dcsa))

    return DataChannelOffer(
        index=index,
        media=md,
        remote_address=conn.address,
        remote_addrtype=conn.addrtype.upper(),
        remote_port=md.port,
        sctp_port=sctp_port,
        max_message_size=max_message_size,
        setup=setup,
        fingerprints=fingerprints,
        tls_id=tls_id,
        ice=ice,
        dcmaps=tuple(dcmaps),
        dcsas=tuple(dcsas),
        bootstrap_used_by=md.attribute_value("3gpp-bdc-used-by"),
        mid=md.attribute_value("mid"),
        bandwidths=md.bandwidths,
    )


def _parse_ice(md: MediaDescription, sd: SessionDescription, line: int | None) -> IceParams | None:
    ufrag_attr = _single(_lookup(md, sd, "ice-ufrag"), "ice-ufrag", line)
    pwd_attr = _single(_lookup(md, sd, "ice-pwd"), "ice-pwd", line)
    if ufrag_attr is None and pwd_attr is None:
        return None
    if ufrag_attr is None or pwd_attr is None:
        present = ufrag_attr or pwd_attr
        assert present is not None
        raise SdpError(
            "a=ice-ufrag and a=ice-pwd must both be present (RFC 8839 section 5.4)",
            line=present.line or line,
        )
    ufrag = (ufrag_attr.value or "").strip()
    pwd = (pwd_attr.value or "").strip()
    for attr, text in ((ufrag_attr, ufrag), (pwd_attr, pwd)):
        if len(text) > 256 or not all(ch in _ICE_CHARS for ch in text):
            raise SdpError(f"bad a={attr.name} value (RFC 8839 ice-char)", line=attr.line or line)
    candidates: list[str] = []
    for attr in md.attributes("candidate"):
        if not attr.value or not attr.value.strip():
            raise SdpError("a=candidate needs a value", line=attr.line or line)
        candidates.append(attr.value)
    options_attr = md.attribute("ice-options") or sd.attribute("ice-options")
    options = tuple((options_attr.value or "").split()) if options_attr else ()
    return IceParams(
        ufrag=ufrag,
        pwd=pwd,
        candidates=tuple(candidates),
        ice_lite=sd.has_attribute("ice-lite"),
        end_of_candidates=md.has_attribute("end-of-candidates")
        or sd.has_attribute("end-of-candidates"),
        options=options,
    )


# --------------------------------------------------------------------------------------------
# Which offered streams the MF accepts (TS 26.114 clause 6.2.10)


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """Which offered ``a=dcmap`` streams to accept; a frozen value that config can tune.

    * ``bootstrap_ids`` are accepted when their subprotocol is in ``bootstrap_subprotocols``
      (TS 26.114: 0 and 10 for the local network's bootstrap, 100 and 110 for the remote's).
    * ids ``>= min_application_id`` are application streams: accepted when they carry a
      subprotocol (unless ``require_subprotocol`` is False) that is in
      ``application_subprotocols`` (``None`` = any).
    * everything else is rejected, and so is every copy of a stream id offered twice.

    Subprotocols compare case-insensitively.
    """

    bootstrap_ids: frozenset[int] = frozenset({0, 10, 100, 110})
    bootstrap_subprotocols: frozenset[str] = frozenset({"http"})
    min_application_id: int = 1000
    application_subprotocols: frozenset[str] | None = None
    require_subprotocol: bool = True


DEFAULT_STREAM_POLICY: Final = StreamPolicy()


class RejectedStream(NamedTuple):
    """An offered stream that is left out of the answer, and why."""

    dcmap: DcMap
    reason: str


class StreamDecision(NamedTuple):
    """The result of :func:`accept_streams`; unpacks as ``accepted, rejected``."""

    accepted: tuple[DcMap, ...]
    rejected: tuple[RejectedStream, ...]


def _stream_verdict(dcmap: DcMap, policy: StreamPolicy) -> str | None:
    """``None`` when acceptable, else the rejection reason."""
    sid = dcmap.stream_id
    sub = dcmap.subprotocol
    if sid in policy.bootstrap_ids:
        allowed = {s.lower() for s in policy.bootstrap_subprotocols}
        if sub is None or sub.lower() not in allowed:
            wanted = ", ".join(sorted(policy.bootstrap_subprotocols))
            return (
                f"bootstrap stream {sid} needs subprotocol {wanted} (TS 26.114 6.2.10), got {sub!r}"
            )
        return None
    if sid < policy.min_application_id:
        boot = ", ".join(str(i) for i in sorted(policy.bootstrap_ids))
        return (
            f"stream id {sid} is neither a bootstrap id ({boot}) nor an application id "
            f"(>= {policy.min_application_id})"
        )
    if sub is None:
        if policy.require_subprotocol:
            return f"application stream {sid} has no subprotocol"
        return None
    allowed_app = policy.application_subprotocols
    if allowed_app is not None and sub.lower() not in {s.lower() for s in allowed_app}:
        return f"application stream {sid}: subprotocol {sub!r} is not supported"
    return None


def accept_streams(
    offer_dcmaps: Iterable[DcMap], *, policy: StreamPolicy = DEFAULT_STREAM_POLICY
) -> StreamDecision:
    """Split offered dcmaps into accepted and rejected ones, keeping offer order."""
    dcmaps = tuple(offer_dcmaps)
    counts: dict[int, int] = {}
    for d in dcmaps:
        counts[d.stream_id] = counts.get(d.stream_id, 0) + 1
    accepted: list[DcMap] = []
    rejected: list[RejectedStream] = []
    for d in dcmaps:
        if counts[d.stream_id] > 1:
            rejected.append(RejectedStream(d, f"stream id {d.stream_id} is offered more than once"))
            continue
        reason = _stream_verdict(d, policy)
        if reason is None:
            accepted.append(d)
        else:
            rejected.append(RejectedStream(d, reason))
    return StreamDecision(tuple(accepted), tuple(rejected))
