"""SIP message model (RFC 3261 section 7).

Requests and responses are frozen, slotted dataclasses. Headers keep their order and every
value exactly as received (after unfolding, RFC 3261 section 7.3.1); names are stored in their
canonical long form so that compact forms (``v``, ``i``, ``f`` ...) compare equal to long ones.
Change a message with :func:`dataclasses.replace` or the ``with_*`` helpers.

Parsing of structured header values (Via, CSeq, name-addr) lives in :mod:`avatar_mf.sip.headers`;
wire parsing in :mod:`avatar_mf.sip.parser`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

SIP_VERSION = "SIP/2.0"

#: RFC 3261 section 7.3.3 and later RFCs: compact form -> canonical long form.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Long names whose conventional spelling is not plain title case.
_SPECIAL_CASE: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
}


@lru_cache(maxsize=1024)
def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name (compact forms expanded).

    Pure, and cached: header names repeat from message to message.
    """
    low = name.strip().lower()
    if len(low) == 1 and low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    special = _SPECIAL_CASE.get(low)
    if special is not None:
        return special
    return "-".join(part[:1].upper() + part[1:] for part in low.split("-"))


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered, immutable multi-map of header fields.

    ``items`` holds ``(canonical name, value)`` pairs in wire order. A header that appears as
    a comma-separated list on one line is one item; :meth:`get_list` splits such values.
    """

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        return cls(tuple((canonical_name(n), v) for n, v in pairs))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = canonical_name(name)
        for n, v in self.items:
            if n == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` as it appeared, one per header line."""
        key = canonical_name(name)
        return [v for n, v in self.items if n == key]

    def get_list(self, name: str) -> list[str]:
        """Every element of ``name``: each line split at top-level commas (RFC 3261 7.3.1)."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_header_list(value))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, name: str, value: str) -> Headers:
        return Headers((*self.items, (canonical_name(name), value)))

    def prepend(self, name: str, value: str) -> Headers:
        return Headers(((canonical_name(name), value), *self.items))

    def remove(self, name: str) -> Headers:
        key = canonical_name(name)
        return Headers(tuple((n, v) for n, v in self.items if n != key))

    def set(self, name: str, value: str) -> Headers:
        """Replace every ``name`` by one value, at the position of the first (or at the end)."""
        key = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self.items:
            if n == key:
                if not placed:
                    out.append((key, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((key, value))
        return Headers(tuple(out))


# The only characters that change the state of split_header_list.
_LIST_SPECIALS = re.compile(r'[,"<>\\]')


def split_header_list(value: str) -> list[str]:
    """Split a header value at commas that are outside quotes and angle brackets."""
    if '"' not in value and "<" not in value:
        return [item for part in value.split(",") if (item := part.strip())]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    skip_until = -1
    for match in _LIST_SPECIALS.finditer(value):
        pos = match.start()
        if pos < skip_until:
            continue  # the character after a backslash inside quotes
        ch = value[pos]
        if in_quotes:
            if ch == "\\":
                skip_until = pos + 2
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            item = value[start:pos].strip()
            if item:
                parts.append(item)
            start = pos + 1
    item = value[start:].strip()
    if item:
        parts.append(item)
    return parts


@dataclass(frozen=True, slots=True)
class Request:
    """A SIP request. ``uri`` is the Request-URI exactly as on the wire."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def with_headers(self, headers: Headers) -> Request:
        # The constructor, not dataclasses.replace: the same object, several times cheaper.
        return Request(self.method, self.uri, headers, self.body, self.version)


@dataclass(frozen=True, slots=True)
class Response:
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def with_headers(self, headers: Headers) -> Response:
        return Response(self.status, self.reason, headers, self.body, self.version)

    @property
    def is_provisional(self) -> bool:
        return 100 <= self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200


Message = Request | Response


def serialize(msg: Message) -> bytes:
    """Serialize a message to wire bytes. Content-Length is always written and always true."""
    if isinstance(msg, Request):
        start = f"{msg.method} {msg.uri} {msg.version}"
    else:
        start = f"{msg.version} {msg.status} {msg.reason}"
    lines = [start]
    for name, value in msg.headers.items:
        if name == "Content-Length":
            continue
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(msg.body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("utf-8") + msg.body
