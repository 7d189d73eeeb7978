"""Building responses and fresh identifiers (RFC 3261 sections 8.2.6, 8.1.1.4, 8.1.1.7, 19.3).

:func:`make_response` follows RFC 3261 8.2.6.2: the response copies every Via (in order, with
their values untouched), From, To, Call-ID and CSeq from the request, adds a To tag when asked
and the request's To has none (never on 100 Trying), and copies Timestamp into 100 Trying
(RFC 3261 8.2.6.1). :func:`response_for_error` turns a :class:`~avatar_mf.sip.errors.SipError`
into that response, extra headers included (Unsupported, Accept, Allow ...).

Identifiers come from :mod:`secrets`: branches carry the RFC 3261 magic cookie ``z9hG4bK``
(8.1.1.7), tags and Call-IDs are random with at least 64 bits of entropy (19.3).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from avatar_mf.sip.errors import REASON_PHRASES, SipError, SipParseError, default_reason
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Headers, Request, Response

__all__ = [
    "MAGIC_COOKIE",
    "REASON_PHRASES",
    "default_reason",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "response_for_error",
]

MAGIC_COOKIE = "z9hG4bK"

_COPIED = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})


def _to_with_tag(to: str, tag: str) -> str:
    """Add ``;tag=`` to a To value unless it already has one (raw append keeps the bytes)."""
    try:
        if parse_name_addr(to).tag is not None:
            return to
    except SipParseError:
        pass
    return f"{to};tag={tag}"


def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build the response to ``req`` (RFC 3261 8.2.6.2).

    Args:
        status: the status code (100-699).
        reason: the reason phrase; defaults to the RFC phrase for ``status``.
        to_tag: added to To when To has no tag yet; ignored for 100 Trying.
        headers: extra header fields, appended after the copied ones.
        body: the body; ``content_type`` names its type (Content-Length is always written by
            :func:`~avatar_mf.sip.message.serialize`).
    """
    out: list[tuple[str, str]] = []
    for name, value in req.headers.items:
        if name not in _COPIED:
            continue
        if name == "To" and to_tag is not None and status != 100:
            value = _to_with_tag(value, to_tag)
        out.append((name, value))
    if status == 100:
        timestamp = req.headers.get("Timestamp")
        if timestamp is not None:
            out.append(("Timestamp", timestamp))
    out.extend(Headers.of(headers).items)
    if content_type is not None:
        out.append(("Content-Type", content_type))
    return Response(
        status, reason if reason is not None else default_reason(status), Headers(tuple(out)), body
    )


def response_for_error(req: Request, err: SipError, to_tag: str | None = None) -> Response:
    """The response that answers ``err`` (its status, reason and extra headers).

    ``req`` is the request or the ``partial`` request of a :class:`SipParseError`. A To tag is
    added (a fresh one when ``to_tag`` is ``None``) since error responses end the transaction
    outside any dialog (RFC 3261 8.2.6.2). Never answer an ACK (RFC 3261 17).
    """
    tag = to_tag if to_tag is not None else new_tag()
    return make_response(req, err.status, err.reason, to_tag=tag, headers=err.headers)


def new_branch() -> str:
    """A fresh Via branch: the RFC 3261 magic cookie and 96 random bits."""
    return MAGIC_COOKIE + secrets.token_urlsafe(12)


def new_tag() -> str:
    """A fresh From/To tag (64 random bits, RFC 3261 19.3)."""
    return secrets.token_hex(8)


def new_call_id(host: str) -> str:
    """A fresh Call-ID ``random@host`` (128 random bits, RFC 3261 8.1.1.4)."""
    return f"{secrets.token_hex(16)}@{host}"
