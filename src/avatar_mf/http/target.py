"""Request-target to a safe, normalised path (RFC 9112 3.2, RFC 3986 2.1, 3.3).

:func:`parse_path` turns a request-target into decoded path segments that can be looked up in a
folder or appended to a base URL without escaping it. It is strict on purpose, because the MF
serves a folder and proxies to a base URL:

- origin-form (``/a/b?q``) and absolute-form (``http://host/a/b?q``, RFC 9112 3.2.2) are
  accepted; asterisk-form and authority-form are not paths (400);
- percent-decoding is done once, per segment, strictly: ``%`` must be followed by two hex
  digits and the result must be UTF-8;
- after decoding, a segment must not be ``.`` or ``..`` (clients remove dot-segments before
  sending, RFC 3986 5.2.4; one that reaches the MF is an attempt to climb out), nor contain
  ``/`` (an encoded ``%2F``), ``\\`` or a control character (NUL included);
- empty segments (``//``) are refused, except the trailing one of a folder path (``/a/``).

Every refusal is an :class:`~avatar_mf.http.messages.HttpProtocolError` carrying a 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from avatar_mf.http.messages import HttpError, HttpProtocolError

__all__ = ["RequestPath", "parse_path"]

_ABSOLUTE = re.compile(r"(?i)(https?)://[^/?#]*")
_VISIBLE = re.compile(r"[\x21-\x7e]*")
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: RFC 3986 pchar characters besides unreserved ones, left unencoded by RequestPath.encoded().
_PCHAR_SAFE = "!$&'()*+,;=:@"


@dataclass(frozen=True, slots=True)
class RequestPath:
    """A validated request path."""

    segments: tuple[str, ...]
    """Decoded segments, none empty, ``.`` or ``..``, none with ``/``, ``\\`` or a control
    character. ``()`` for ``/``."""
    directory: bool
    """The path ends with ``/`` (the root included): it names a folder."""
    query: str | None = None
    """The query as received (still percent-encoded), without the ``?``; None without one."""

    def encoded(self) -> str:
        """The path re-encoded canonically, starting with ``/`` (for a proxied request)."""
        path = "/" + "/".join(quote(segment, safe=_PCHAR_SAFE) for segment in self.segments)
        if self.directory and self.segments:
            path += "/"
        return path

    def key(self, index: str = "index.html") -> str:
        """The relative file name this path names (``index`` for a folder): ``a/b.js``."""
        parts = (*self.segments, index) if self.directory else self.segments
        return "/".join(parts)


def _bad(detail: str) -> HttpProtocolError:
    return HttpProtocolError(HttpError(400, detail))


def parse_path(target: str) -> RequestPath:
    """Validate and decode the path of a request-target; raises HttpProtocolError (400)."""
    if not _VISIBLE.fullmatch(target):
        raise _bad("invalid character in request-target")
    if not target.startswith("/"):
        match = _ABSOLUTE.match(target)
        if match is None:
            raise _bad("request-target is not a path")
        target = target[match.end() :] or "/"
        if not target.startswith("/"):  # http://host?query
            target = "/" + target
    target = target.partition("#")[0]
    path, question, query = target.partition("?")
    raw_segments = path[1:].split("/")
    directory = raw_segments[-1] == ""
    if directory:
        raw_segments.pop()
    segments = tuple(_decode_segment(raw) for raw in raw_segments)
    return RequestPath(segments, directory, query if question else None)


def _decode_segment(raw: str) -> str:
    if not raw:
        raise _bad("empty path segment")
    data = raw.encode("ascii")
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25:  # %
            pair = data[i + 1 : i + 3]
            if len(pair) != 2 or not all(b in _HEX for b in pair):
                raise _bad("invalid percent-encoding in path")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    try:
        segment = out.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("path is not UTF-8") from None
    if segment in (".", ".."):
        raise _bad("dot-segment in path")
    if any(c in "/\\" or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in segment):
        raise _bad("forbidden character in path")
    return segment
