"""SDP session descriptions: model, parser, serializer (RFC 8866, which obsoletes RFC 4566).

The model keeps every line of a description: the fields the MF interprets (RFC 8866 section 5:
``v= o= s= i= u= e= p= c= b= t= r= z= k= a=`` at session level, ``m= i= c= b= k= a=`` per media
description) and every ``a=`` attribute, interpreted or not, in its original order. Serializing
writes the RFC 8866 section 5 order, so ``serialize_sdp(parse_sdp(text))`` gives ``text`` back
for well-formed input, with these normalisations only:

* line endings become CRLF (LF-only input is accepted, RFC 8866 section 5);
* blank lines are dropped;
* runs of spaces between the fields of ``o= c= t= m=`` become one space;
* numbers lose leading zeros (``port``, ``b=`` bandwidth, ``t=`` times).

Parsing is strict where RFC 8866 is (``v=0`` first, one ``o=`` and ``s=``, at least one ``t=``,
known type letters only -- RFC 8866 section 5 says a parser must ignore or reject a description
with a type letter it does not understand: we reject) and liberal about the order of the
optional lines inside one section, which real IMS equipment does not always respect; such
input is parsed and re-serialized in RFC order. Attribute names are matched case-insensitively
by the lookup helpers and kept as received.

Errors raise :class:`~avatar_mf.sdp.errors.SdpError` (status 400) with the 1-based line number.
Every parsed :class:`Attribute` and :class:`MediaDescription` remembers its line number
(``line``, not part of equality) so later layers can point at the offending line too.

Objects are frozen and slotted; change them with :func:`dataclasses.replace` or the
``with_*`` helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Self

from avatar_mf.sdp.errors import SdpError

CRLF = "\r\n"

# RFC 8866 section 9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A /
# %x5E-7E
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_FORBIDDEN_IN_LINE = ("\r", "\n", "\x00")
_SESSION_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_TYPES = frozenset("icbka")
_MAX_DIGITS = 20  # enough for any 64-bit value; guards int() on hostile input


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 8866 token."""
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def is_digits(text: str, max_digits: int = _MAX_DIGITS) -> bool:
    """True for 1..``max_digits`` ASCII digits (``str.isdigit`` alone accepts e.g. ``'²'``)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``.

    ``sess_id`` and ``sess_version`` stay strings so that any digit string survives a round
    trip; :attr:`version_number` gives the version as an int (RFC 3264 section 8 compares it).
    """

    username: str
    sess_id: str
    sess_version: str
    nettype: str
    addrtype: str
    address: str

    @property
    def version_number(self) -> int:
        return int(self.sess_version)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 section 5.7).

    ``address`` is kept as received, including any multicast ``/ttl/count`` suffix.
    """

    nettype: str
    addrtype: str
    address: str

    @property
    def is_multicast_form(self) -> bool:
        """True when the address carries a ``/ttl`` or ``/count`` suffix."""
        return "/" in self.address

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 section 5.8), e.g. ``AS`` in kbit/s."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines kept verbatim (RFC 8866 5.9, 5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` (flag, ``value is None``) or ``a=<name>:<value>`` (RFC 8866 section 5.13).

    ``a=name:`` (empty value) is distinct from ``a=name``. ``line`` is the 1-based line number
    in the parsed text, ``None`` for constructed attributes; it is not part of equality.
    """

    name: str
    value: str | None = None
    line: int | None = field(default=None, compare=False, repr=False)

    def matches(self, name: str) -> bool:
        """Case-insensitive name comparison."""
        return self.name.lower() == name.lower()

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


class _HasAttributes:
    """Attribute lookup shared by session and media descriptions (``attrs`` field).

    Only dataclasses inherit it; mypy cannot know that, hence the ``type: ignore[type-var]``
    on the :func:`dataclasses.replace` calls below.
    """

    __slots__ = ()
    attrs: tuple[Attribute, ...]
    _by_name: dict[str, tuple[Attribute, ...]] | None

    def _index(self) -> dict[str, tuple[Attribute, ...]]:
        """The attributes by lower-cased name, built on the first look-up: answering an offer
        looks up some twenty names in each description (one pass instead of one per name)."""
        index = self._by_name
        if index is None:
            lists: dict[str, list[Attribute]] = {}
            for attr in self.attrs:
                found = lists.get(attr.name.lower())
                if found is None:
                    lists[attr.name.lower()] = [attr]
                else:
                    found.append(attr)
            index = {name: tuple(found) for name, found in lists.items()}
            # Frozen: the index is a cache of ``attrs`` (which never changes), not state.
            object.__setattr__(self, "_by_name", index)
        return index

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called ``name`` (case-insensitive), or ``None``."""
        found = self._index().get(name.lower())
        return found[0] if found else None

    def attributes(self, name: str) -> tuple[Attribute, ...]:
        """Every attribute called ``name`` (case-insensitive), in order."""
        return self._index().get(name.lower(), ())

    def attribute_value(self, name: str) -> str | None:
        """The value of the first ``name`` attribute; ``None`` if absent or a flag."""
        attr = self.attribute(name)
        return None if attr is None else attr.value

    def has_attribute(self, name: str) -> bool:
        return self.attribute(name) is not None

    def with_attributes(self, attrs: Iterable[Attribute | tuple[str, str | None]]) -> Self:
        """A copy whose attributes are exactly ``attrs`` (``(name, value)`` pairs allowed)."""
        built = tuple(a if isinstance(a, Attribute) else Attribute(a[0], a[1]) for a in attrs)
        return replace(self, attrs=built)  # type: ignore[type-var]

    def adding_attributes(self, *attrs: Attribute) -> Self:
        """A copy with ``attrs`` appended."""
        return replace(self, attrs=(*self.attrs, *attrs))  # type: ignore[type-var]

    def without_attributes(self, *names: str) -> Self:
        """A copy without any attribute called one of ``names`` (case-insensitive)."""
        low = {n.lower() for n in names}
        return replace(  # type: ignore[type-var]
            self, attrs=tuple(a for a in self.attrs if a.name.lower() not in low)
        )


@dataclass(frozen=True, slots=True)
class MediaDescription(_HasAttributes):
    """One media description: ``m=<media> <port>[/<number>] <proto> <fmt> ...`` and its lines.

    ``port_count`` is the optional ``/<number of ports>`` (``None`` when absent). Several
    ``c=`` lines are allowed in a media description (RFC 8866 section 5.7): the first is
    :attr:`connection`.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    info: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attrs: tuple[Attribute, ...] = ()
    line: int | None = field(default=None, compare=False, repr=False)
    _by_name: dict[str, tuple[Attribute, ...]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is rejected or disabled (RFC 3264 sections 6 and 8.2)."""
        return self.port == 0

    def m_line(self) -> str:
        """The value of the ``m=`` line."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((self.media, port, self.proto, *self.formats))


@dataclass(frozen=True, slots=True)
class SessionDescription(_HasAttributes):
    """A whole SDP body. ``media`` holds the media descriptions in ``m=`` order."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    info: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    times: tuple[Timing, ...] = (Timing(),)
    time_zones: str | None = None
    key: str | None = None
    attrs: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    _by_name: dict[str, tuple[Attribute, ...]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def with_media(self, media: Iterable[MediaDescription]) -> SessionDescription:
        return replace(self, media=tuple(media))

    def connection_for(self, index: int) -> Connection | None:
        """The connection data that applies to media ``index`` (media level, else session)."""
        return self.media[index].connection or self.connection


# --------------------------------------------------------------------------------------------
# Parsing


def _split_fields(value: str) -> list[str]:
    return [part for part in value.split(" ") if part]


def _parse_int(text: str, what: str, line: int, *, maximum: int | None = None) -> int:
    if not is_digits(text):
        raise SdpError(f"{what} {text!r} is not a number", line=line)
    number = int(text)
    if maximum is not None and number > maximum:
        raise SdpError(f"{what} {number} is out of range (max {maximum})", line=line)
    return number


def _parse_origin(value: str, line: int) -> Origin:
    parts = _split_fields(value)
    if len(parts) != 6:
        raise SdpError(
            f"bad o= line {value!r}: expected 6 fields "
            "(username sess-id sess-version nettype addrtype address), got "
            f"{len(parts)}",
            line=line,
        )
    username, sess_id, sess_version, nettype, addrtype, address = parts
    for what, text in (("sess-id", sess_id), ("sess-version", sess_version)):
        if not (text.isascii() and text.isdigit()) or len(text) > 64:
            raise SdpError(f"bad o= line: {what} {text!r} is not a number", line=line)
    for what, text in (("nettype", nettype), ("addrtype", addrtype)):
        if not is_token(text):
            raise SdpError(f"bad o= line: {what} {text!r} is not a token", line=line)
    return Origin(username, sess_id, sess_version, nettype, addrtype, address)


def _parse_connection(value: str, line: int) -> Connection:
    parts = _split_fields(value)
    if len(parts) != 3:
        raise SdpError(f"bad c= line {value!r}: expected 'nettype addrtype address'", line=line)
    nettype, addrtype, address = parts
    if not is_token(nettype) or not is_token(addrtype):
        raise SdpError(f"bad c= line {value!r}: nettype/addrtype must be tokens", line=line)
    return Connection(nettype, addrtype, address)


def _parse_bandwidth(value: str, line: int) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep or not is_token(bwtype):
        raise SdpError(f"bad b= line {value!r}: expected '<bwtype>:<bandwidth>'", line=line)
    return Bandwidth(bwtype, _parse_int(amount, "b= bandwidth", line))


def _parse_timing(value: str, line: int) -> Timing:
    parts = _split_fields(value)
    if len(parts) != 2:
        raise SdpError(f"bad t= line {value!r}: expected '<start> <stop>'", line=line)
    return Timing(_parse_int(parts[0], "t= start", line), _parse_int(parts[1], "t= stop", line))


def _parse_media(value: str, line: int) -> MediaDescription:
    parts = _split_fields(value)
    if len(parts) < 4:
        raise SdpError(
            f"bad m= line {value!r}: expected '<media> <port> <proto> <fmt> ...'", line=line
        )
    media, port_text, proto, *formats = parts
    if not is_token(media):
        raise SdpError(f"bad m= line: media type {media!r} is not a token", line=line)
    port_part, slash, count_part = port_text.partition("/")
    port = _parse_int(port_part, "m= port", line, maximum=65535)
    port_count: int | None = None
    if slash:
        port_count = _parse_int(count_part, "m= number of ports", line, maximum=65535)
        if port_count == 0:
            raise SdpError("m= number of ports must be at least 1", line=line)
    if not all(is_token(p) for p in proto.split("/")):
        raise SdpError(f"bad m= line: proto {proto!r} is not token[/token...]", line=line)
    for fmt in formats:
        if not is_token(fmt):
            raise SdpError(f"bad m= line: format {fmt!r} is not a token", line=line)
    return MediaDescription(
        media=media,
        port=port,
        proto=proto,
        formats=tuple(formats),
        port_count=port_count,
        line=line,
    )


def _parse_attribute(value: str, line: int) -> Attribute:
    name, sep, attr_value = value.partition(":")
    if not name:
        raise SdpError(f"bad a= line {value!r}: empty attribute name", line=line)
    if " " in name or "\t" in name:
        raise SdpError(f"bad a= line {value!r}: attribute name contains blanks", line=line)
    return Attribute(name, attr_value if sep else None, line=line)


class _MediaBuilder:
    __slots__ = ("md", "info", "connections", "bandwidths", "key", "attrs")

    def __init__(self, md: MediaDescription) -> None:
        self.md = md
        self.info: str | None = None
        self.connections: list[Connection] = []
        self.bandwidths: list[Bandwidth] = []
        self.key: str | None = None
        self.attrs: list[Attribute] = []

    def build(self) -> MediaDescription:
        md = self.md
        return MediaDescription(
            media=md.media,
            port=md.port,
            proto=md.proto,
            formats=md.formats,
            port_count=md.port_count,
            info=self.info,
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            key=self.key,
            attrs=tuple(self.attrs),
            line=md.line,
        )


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        return text
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        # Line number of the first bad byte.
        line = bytes(text)[: exc.start].count(b"\n") + 1
        raise SdpError(f"not UTF-8 text (byte offset {exc.start})", line=line) from None


def parse_sdp(text: str | bytes) -> SessionDescription:
    """Parse an SDP body (RFC 8866). Raises :class:`SdpError` (400) when malformed."""
    body = _decode(text)
    raw_lines = body.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()

    version: int | None = None
    origin: Origin | None = None
    session_name: str | None = None
    info: str | None = None
    uri: str | None = None
    emails: list[str] = []
    phones: list[str] = []
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    times: list[Timing] = []
    time_zones: str | None = None
    key: str | None = None
    attrs: list[Attribute] = []
    media: list[_MediaBuilder] = []

    def once(current: object, what: str, line: int) -> None:
        if current is not None:
            raise SdpError(f"more than one {what}= line in the session section", line=line)

    for number, raw in enumerate(raw_lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line == "":
            continue
        if "\r" in line or "\x00" in line:
            raise SdpError("line contains a CR or NUL character", line=number)
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"expected '<type>=<value>', got {line[:40]!r}", line=number)
        kind, value = line[0], line[2:]

        if version is None:
            if kind != "v":
                raise SdpError(f"the first line must be v=0, got {kind}=", line=number)
            if value != "0":
                raise SdpError(f"unsupported SDP version v={value[:20]!r}", line=number)
            version = 0
            continue

        if kind == "m":
            media.append(_MediaBuilder(_parse_media(value, number)))
            continue

        if media:
            current = media[-1]
            if kind not in _MEDIA_TYPES:
                if kind in _SESSION_TYPES:
                    raise SdpError(f"{kind}= is not allowed in a media description", line=number)
                raise SdpError(f"unknown line type {kind!r}", line=number)
            if kind == "a":
                current.attrs.append(_parse_attribute(value, number))
            elif kind == "c":
                current.connections.append(_parse_connection(value, number))
            elif kind == "b":
                current.bandwidths.append(_parse_bandwidth(value, number))
            elif kind == "i":
                if current.info is not None:
                    raise SdpError("more than one i= line in a media description", line=number)
                current.info = value
            else:  # "k"
                if current.key is not None:
                    raise SdpError("more than one k= line in a media description", line=number)
                current.key = value
            continue

        if kind == "a":
            attrs.append(_parse_attribute(value, number))
        elif kind == "o":
            once(origin, "o", number)
            origin = _parse_origin(value, number)
        elif kind == "s":
            once(session_name, "s", number)
            session_name = value
        elif kind == "c":
            once(connection, "c", number)
            connection = _parse_connection(value, number)
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(value, number))
        elif kind == "t":
            times.append(_parse_timing(value, number))
        elif kind == "r":
            if not times:
                raise SdpError("r= line without a preceding t= line", line=number)
            last = times[-1]
            times[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "i":
            once(info, "i", number)
            info = value
        elif kind == "u":
            once(uri, "u", number)
            uri = value
        elif kind == "e":
            emails.append(value)
        elif kind == "p":
            phones.append(value)
        elif kind == "z":
            once(time_zones, "z", number)
            time_zones = value
        elif kind == "k":
            once(key, "k", number)
            key = value
        elif kind == "v":
            raise SdpError("more than one v= line", line=number)
        else:
            raise SdpError(f"unknown line type {kind!r}", line=number)

    last_line = len(raw_lines)
    if version is None:
        raise SdpError("empty SDP body: missing v=0", line=1)
    if origin is None:
        raise SdpError("missing o= line", line=last_line)
    if session_name is None:
        raise SdpError("missing s= line", line=last_line)
    if not times:
        raise SdpError("missing t= line", line=last_line)
    return SessionDescription(
        version=version,
        origin=origin,
        session_name=session_name,
        info=info,
        uri=uri,
        emails=tuple(emails),
        phones=tuple(phones),
        connection=connection,
        bandwidths=tuple(bandwidths),
        times=tuple(times),
        time_zones=time_zones,
        key=key,
        attrs=tuple(attrs),
        media=tuple(builder.build() for builder in media),
    )


# --------------------------------------------------------------------------------------------
# Serializing


def _check(text: str, what: str) -> str:
    for bad in _FORBIDDEN_IN_LINE:
        if bad in text:
            raise ValueError(f"SDP {what} contains {bad!r}: {text[:40]!r}")
    return text


def sdp_lines(sd: SessionDescription) -> list[str]:
    """The lines of ``sd`` (without line endings) in RFC 8866 section 5 order."""
    out: list[str] = [f"v={sd.version}", f"o={_check(str(sd.origin), 'o=')}"]
    out.append(f"s={_check(sd.session_name, 's=')}")
    if sd.info is not None:
        out.append(f"i={_check(sd.info, 'i=')}")
    if sd.uri is not None:
        out.append(f"u={_check(sd.uri, 'u=')}")
    out.extend(f"e={_check(e, 'e=')}" for e in sd.emails)
    out.extend(f"p={_check(p, 'p=')}" for p in sd.phones)
    if sd.connection is not None:
        out.append(f"c={_check(str(sd.connection), 'c=')}")
    out.extend(f"b={_check(str(b), 'b=')}" for b in sd.bandwidths)
    for timing in sd.times:
        out.append(f"t={timing.start} {timing.stop}")
        out.extend(f"r={_check(r, 'r=')}" for r in timing.repeats)
    if sd.time_zones is not None:
        out.append(f"z={_check(sd.time_zones, 'z=')}")
    if sd.key is not None:
        out.append(f"k={_check(sd.key, 'k=')}")
    out.extend(f"a={_check(str(a), 'a=')}" for a in sd.attrs)
    for md in sd.media:
        out.append(f"m={_check(md.m_line(), 'm=')}")
        if md.info is not None:
            out.append(f"i={_check(md.info, 'i=')}")
        out.extend(f"c={_check(str(c), 'c=')}" for c in md.connections)
        out.extend(f"b={_check(str(b), 'b=')}" for b in md.bandwidths)
        if md.key is not None:
            out.append(f"k={_check(md.key, 'k=')}")
        out.extend(f"a={_check(str(a), 'a=')}" for a in md.attrs)
    return out


def serialize_sdp(sd: SessionDescription) -> str:
    """Serialize ``sd`` with CRLF line endings (RFC 8866 section 5).

    Raises ``ValueError`` if a field holds CR, LF or NUL (a programming error, never input).
    """
    return CRLF.join(sdp_lines(sd)) + CRLF
