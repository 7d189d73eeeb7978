"""Sans-IO HTTP/1.1 for the bootstrap data channels (RFC 9110, RFC 9112).

The UE downloads its data channel application over HTTP/1.1 carried in the messages of a
bootstrap data channel (3GPP TS 26.114 6.2.10, subprotocol ``http``). This package parses
requests (:class:`RequestParser`), serializes responses (:class:`HttpResponse`) and normalises
request-targets (:func:`parse_path`); it never touches the network.
"""

from avatar_mf.http.messages import (
    Headers,
    HttpError,
    HttpProtocolError,
    HttpRequest,
    HttpResponse,
    error_response,
    http_date,
    reason_phrase,
)
from avatar_mf.http.parser import RequestParser
from avatar_mf.http.target import RequestPath, parse_path

__all__ = [
    "Headers",
    "HttpError",
    "HttpProtocolError",
    "HttpRequest",
    "HttpResponse",
    "RequestParser",
    "RequestPath",
    "error_response",
    "http_date",
    "parse_path",
    "reason_phrase",
]
