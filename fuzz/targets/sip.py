"""SIP: :func:`avatar_mf.sip.parser.parse_message`, :class:`~avatar_mf.sip.parser.StreamFramer`
and :func:`avatar_mf.sip.validate.validate_request`, used as the transport endpoint uses them.

Documented outcomes: the parser returns a Request or Response, or raises
:class:`~avatar_mf.sip.errors.SipParseError` ("Nothing else is ever raised"); the framer
returns items (errors among them) and never raises; ``validate_request`` raises
:class:`~avatar_mf.sip.errors.SipError`. The error response the endpoint writes for a request
(or for the ``partial`` request of a parse error) must build and serialise.
"""

from __future__ import annotations

from avatar_mf.sip.build import response_for_error
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.message import Request, serialize
from avatar_mf.sip.parser import StreamFramer, parse_message
from avatar_mf.sip.validate import KNOWN_METHODS, validate_request

_TAG = "fuzz1"


def _answer(request: Request, error: SipError) -> None:
    if request.method != "ACK":
        serialize(response_for_error(request, error, _TAG))


def _check(message: object) -> None:
    if isinstance(message, SipParseError):
        if message.partial is not None:
            _answer(message.partial, message)
        return
    if isinstance(message, Request):
        try:
            validate_request(message, allowed_methods=KNOWN_METHODS)
        except SipError as err:
            _answer(message, err)


def fuzz_one(data: bytes) -> None:
    for datagram in (True, False):
        try:
            message = parse_message(data, datagram=datagram)
        except SipParseError as err:
            _check(err)
        else:
            _check(message)
            serialize(message)
    # A stream: the bytes twice over (two messages back to back), in pieces of a size the
    # input's last byte chooses.
    framer = StreamFramer()
    stream = data + data
    step = 1 + (data[-1] % 64 if data else 0)
    for start in range(0, len(stream), step):
        for item in framer.feed(stream[start : start + step]):
            _check(item)
