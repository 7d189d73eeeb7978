"""UAS request validation (RFC 3261 section 8.2; RFC 4475 sections 3.1.2, 3.3).

:func:`validate_request` runs the checks a UAS makes before handing a parsed request to a
transaction user, in the order of RFC 3261 8.2, and raises a :class:`SipError` that names the
response to send:

1. Header syntax the parser leaves for later (400): single-valued headers appearing more than
   once, CSeq, Max-Forwards range, To/From/Contact name-addr syntax, Via syntax.
2. Method (RFC 3261 8.2.1): when ``allowed_methods`` is given, an unknown method is 501 and a
   known but unsupported one 405, both with ``Allow``.
3. CSeq method equal to the request method (RFC 3261 8.1.1.5, 400).
4. Max-Forwards 0 (RFC 3261 16.3 step 2, 483 Too Many Hops) -- except OPTIONS, which this UAS
   answers itself as RFC 3261 16.3 and 11 allow (RFC 4475 3.3.11 lets an element do either).
5. Request-URI (RFC 3261 8.2.2.1): a scheme outside ``allowed_schemes`` is 416; a sip/sips URI
   must parse and must not carry ``?headers`` (400, RFC 4475 3.1.2.11).
6. Require (RFC 3261 8.2.2.3): unknown option-tags are 420 with ``Unsupported`` listing them.
   Proxy-Require is for proxies and ignored here (RFC 4475 3.3.5). Not applied to ACK/CANCEL.
7. Content (RFC 3261 8.2.3): for methods that carry a session description (INVITE, UPDATE,
   ACK, PRACK), a Content-Type outside ``accepted_body_types`` is 415 with ``Accept``; an unknown
   Content-Encoding is 415 with ``Accept-Encoding``.
8. Accept (RFC 3261 21.4.7, RFC 4475 3.3.15): an INVITE whose Accept excludes
   ``answer_body_type`` cannot get an answer we can write: 406.

An ACK must never be answered (RFC 3261 17): callers drop an ACK that fails validation.

A CANCEL never reaches the transaction user (the transaction layer answers it), so
:func:`validate_cancel` is its own check, run by the layer before it cancels anything: its
CSeq must parse and name the method CANCEL (RFC 3261 9.1: "the method MUST be CANCEL"),
else 400.
"""

from __future__ import annotations

from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import CSeq, parse_cseq, parse_name_addr, parse_via
from avatar_mf.sip.message import Request, split_header_list
from avatar_mf.sip.uri import SipUri, parse_uri, uri_scheme

__all__ = [
    "DEFAULT_ACCEPTED_BODY_TYPES",
    "DEFAULT_ACCEPTED_ENCODINGS",
    "DEFAULT_ALLOWED_SCHEMES",
    "DEFAULT_SUPPORTED",
    "KNOWN_METHODS",
    "SINGLE_VALUED",
    "validate_cancel",
    "validate_request",
]

#: Option-tags implemented by default (RFC 4028 session timers, RFC 3262 reliable provisionals).
#: List only what the stack really implements: a listed tag silences 420 for it.
DEFAULT_SUPPORTED: frozenset[str] = frozenset({"timer", "100rel"})
DEFAULT_ACCEPTED_BODY_TYPES: frozenset[str] = frozenset({"application/sdp"})
DEFAULT_ACCEPTED_ENCODINGS: frozenset[str] = frozenset({"identity"})
DEFAULT_ALLOWED_SCHEMES: frozenset[str] = frozenset({"sip", "sips", "tel"})

#: Methods defined by RFC 3261 and its extensions (RFC 3262, 3265, 3311, 3428, 3515, 3903, 6086).
KNOWN_METHODS: frozenset[str] = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip

#: Headers that may appear once only (RFC 3261 7.3.1, 20; RFC 4475 3.3.8, 3.3.9).
SINGLE_VALUED: tuple[str, ...] = (
    "To",
    "From",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
)

_BODY_METHODS = frozenset({"INVITE", "UPDATE", "ACK", "PRACK"})
_NO_REQUIRE_METHODS = frozenset({"ACK", "CANCEL"})


_Index = dict[str, list[str]]


def _bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


def _first(index: _Index, name: str) -> str | None:
    values = index.get(name)
    return values[0] if values else None


def _elements(index: _Index, name: str) -> list[str]:
    """Every element of a list header: all lines, split at top-level commas."""
    out: list[str] = []
    for value in index.get(name, ()):
        out.extend(split_header_list(value))
    return out


def _check_single_valued(index: _Index) -> None:
    """RFC 4475 3.3.8 (multi01), 3.3.9 (mcl01): one value only for these headers."""
    # Lines are counted; a comma list on one To/From line fails the name-addr syntax check.
    for name in SINGLE_VALUED:
        values = index.get(name)
        if values is not None and len(values) > 1:
            raise _bad(f"Multiple {name} values")


def _check_syntax(index: _Index) -> CSeq:
    """Structured header syntax (RFC 4475 3.1.2.1, 3.1.2.4, 3.1.2.6, 3.1.2.13-15)."""
    # RFC 4475 3.1.2.4 (scalar02): CSeq number and Max-Forwards range.
    cseq = parse_cseq(_first(index, "CSeq") or "")
    max_forwards = _first(index, "Max-Forwards")
    if max_forwards is not None and not _is_byte(max_forwards):
        raise _bad("Bad Max-Forwards")
    # RFC 4475 3.1.2.6 (quotbal), 3.1.2.14 (badaspec), 3.1.2.15 (baddn).
    for name in ("To", "From"):
        try:
            addr = parse_name_addr(_first(index, name) or "")
        except SipParseError:
            raise _bad(f"Bad {name} header") from None
        if addr.uri == "*":
            raise _bad(f"Bad {name} header")
    # RFC 4475 3.1.2.1 (badinv01), 3.1.2.13 (regbadct).
    try:
        for value in _elements(index, "Contact"):
            parse_name_addr(value)
    except SipParseError:
        raise _bad("Bad Contact header") from None
    try:
        vias = _elements(index, "Via")
        for value in vias:
            parse_via(value)
    except SipParseError:
        raise _bad("Bad Via header") from None
    if not vias:
        raise _bad("Missing Via header")
    return cseq


def _is_byte(value: str) -> bool:
    # 1*DIGIT, leading zeros allowed (RFC 4475 3.1.1.1 sends "0068"), value 0..255.
    return 0 < len(value) <= 10 and value.isascii() and value.isdigit() and int(value) <= 255


def _check_method(req: Request, allowed_methods: frozenset[str] | None) -> None:
    """RFC 3261 8.2.1; RFC 4475 3.1.1.2 (intmeth), 3.1.1.5 (esc02), 3.1.2.18 (mismatch02)."""
    if allowed_methods is None or req.method in allowed_methods:
        return
    allow = (("Allow", ", ".join(sorted(allowed_methods))),)
    if req.method in KNOWN_METHODS:
        raise SipError(405, headers=allow)
    raise SipError(501, headers=allow)


def _check_cseq_method(req: Request, cseq: CSeq) -> None:
    """RFC 4475 3.1.2.17 (mismatch01), 3.1.2.18 (mismatch02): CSeq method = request method."""
    if cseq.method != req.method:
        raise _bad("CSeq method does not match the request method")


def _check_max_forwards(req: Request, index: _Index) -> None:
    """RFC 4475 3.3.11 (zeromf); RFC 3261 16.3: 483 for Max-Forwards 0 unless OPTIONS."""
    value = _first(index, "Max-Forwards")
    if value is not None and int(value) == 0 and req.method != "OPTIONS":
        raise SipError(483, "Too Many Hops")


def _check_request_uri(req: Request, allowed_schemes: frozenset[str]) -> None:
    """RFC 4475 3.3.2 (unkscm), 3.3.3 (novelsc): 416; 3.1.2.11 (escruri): 400."""
    scheme = uri_scheme(req.uri)
    if scheme is None:
        raise _bad("Bad Request-URI")
    if scheme not in allowed_schemes:
        raise SipError(416, "Unsupported URI Scheme")
    try:
        uri = parse_uri(req.uri)
    except SipParseError:
        raise _bad("Bad Request-URI") from None
    if isinstance(uri, SipUri) and uri.headers:
        raise _bad("Headers not allowed in Request-URI")


def _check_require(req: Request, index: _Index, supported: frozenset[str]) -> None:
    """RFC 4475 3.3.5 (bext01): 420 with Unsupported; Proxy-Require is ignored by a UAS."""
    if req.method in _NO_REQUIRE_METHODS:
        return
    unknown: list[str] = []
    for tag in _elements(index, "Require"):
        if tag not in supported and tag.lower() not in supported and tag not in unknown:
            unknown.append(tag)
    if unknown:
        raise SipError(420, "Bad Extension", headers=(("Unsupported", ", ".join(unknown)),))


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip(" \t").lower()


def _check_content(
    req: Request,
    index: _Index,
    accepted_body_types: frozenset[str],
    accepted_encodings: frozenset[str],
) -> None:
    """RFC 4475 3.3.6 (invut): 415 with Accept; unknown Content-Encoding: 415 with
    Accept-Encoding (RFC 3261 8.2.3)."""
    if req.method not in _BODY_METHODS:
        return
    content_type = _first(index, "Content-Type")
    if not req.body and content_type is None:
        return
    if content_type is None:
        raise _bad("Missing Content-Type")
    if _media_type(content_type) not in accepted_body_types:
        accept = ", ".join(sorted(accepted_body_types))
        raise SipError(415, headers=(("Accept", accept),))
    for coding in _elements(index, "Content-Encoding"):
        if coding.strip(" \t").lower() not in accepted_encodings:
            accept = ", ".join(sorted(accepted_encodings))
            raise SipError(415, headers=(("Accept-Encoding", accept),))


def _check_accept(req: Request, index: _Index, answer_body_type: str | None) -> None:
    """RFC 4475 3.3.15 (sdp01): an INVITE that accepts no format we can answer in: 406."""
    if answer_body_type is None or req.method != "INVITE" or "Accept" not in index:
        return
    major = answer_body_type.split("/", 1)[0]
    wanted = {answer_body_type, f"{major}/*", "*/*"}
    for item in _elements(index, "Accept"):
        if _media_type(item) in wanted:
            return
    raise SipError(406, "Not Acceptable")


def validate_request(
    req: Request,
    *,
    supported: frozenset[str] = DEFAULT_SUPPORTED,
    accepted_body_types: frozenset[str] = DEFAULT_ACCEPTED_BODY_TYPES,
    accepted_encodings: frozenset[str] = DEFAULT_ACCEPTED_ENCODINGS,
    allowed_schemes: frozenset[str] = DEFAULT_ALLOWED_SCHEMES,
    allowed_methods: frozenset[str] | None = None,
    answer_body_type: str | None = "application/sdp",
) -> None:
    """Check a parsed request as a UAS would (RFC 3261 8.2); see the module docstring.

    Args:
        supported: option-tags this UAS implements (RFC 3261 8.2.2.3).
        accepted_body_types: media types accepted in INVITE/UPDATE/ACK/PRACK bodies.
        accepted_encodings: content codings accepted (``identity`` is no coding).
        allowed_schemes: Request-URI schemes served; others get 416.
        allowed_methods: methods served; ``None`` skips the method check.
        answer_body_type: the body type our answers to INVITE carry; ``None`` skips the
            Accept check.

    Raises:
        SipError: the response to send (``SipParseError`` for the 400 family).
    """
    index: _Index = {}
    for name, value in req.headers.items:
        values = index.get(name)
        if values is None:
            index[name] = [value]
        else:
            values.append(value)
    _check_single_valued(index)
    cseq = _check_syntax(index)
    _check_method(req, allowed_methods)
    _check_cseq_method(req, cseq)
    _check_max_forwards(req, index)
    _check_request_uri(req, allowed_schemes)
    _check_require(req, index, supported)
    _check_content(req, index, accepted_body_types, accepted_encodings)
    _check_accept(req, index, answer_body_type)


def validate_cancel(req: Request) -> None:
    """RFC 3261 9.1: a CANCEL's CSeq has the number of the request it cancels and the method
    CANCEL. Raises :class:`SipParseError` (400) otherwise."""
    values = req.headers.get_all("CSeq")
    if len(values) != 1:
        raise _bad("a CANCEL has exactly one CSeq")
    cseq = parse_cseq(values[0])
    if cseq.method != "CANCEL":
        raise _bad(f"CSeq method of a CANCEL must be CANCEL, not {cseq.method[:32]}")
