"""HTTP over the bootstrap data channel: :class:`avatar_mf.http.parser.RequestParser` fed a
sequence of data channel messages, then :func:`avatar_mf.http.target.parse_path` on every
request's target, as the bootstrap service does.

Input: :func:`fuzz.targets.split_messages` cuts the bytes into messages. Documented outcomes:
``feed`` returns requests and :class:`~avatar_mf.http.messages.HttpError` values and never
raises; ``parse_path`` raises :class:`~avatar_mf.http.messages.HttpProtocolError`. The error
response of every HttpError must build.
"""

from __future__ import annotations

from avatar_mf.http.messages import HttpError, HttpProtocolError, HttpRequest
from avatar_mf.http.parser import RequestParser
from avatar_mf.http.target import parse_path
from fuzz.targets import split_messages


def fuzz_one(data: bytes) -> None:
    parser = RequestParser(max_size=4096, max_head_size=1024, max_headers=16)
    for message in split_messages(data):
        for item in parser.feed(message):
            if isinstance(item, HttpRequest):
                try:
                    parse_path(item.target)
                except HttpProtocolError:
                    pass
            elif isinstance(item, HttpError):
                item.response().serialize()
            else:
                raise AssertionError(f"feed returned {item!r}")
