"""Property tests: the parser never raises, and message boundaries never change a good parse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.http import HttpError, HttpProtocolError, HttpRequest, RequestParser, parse_path

TOKEN_CHARS = "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
field_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)
targets = st.lists(st.text("abcXYZ019-._~%2F", min_size=1, max_size=8), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


@st.composite
def requests(draw: st.DrawFn) -> HttpRequest:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "X-CUSTOM"]))
    headers = draw(
        st.lists(
            st.tuples(
                tokens.map(str.lower).filter(
                    lambda n: n not in ("content-length", "transfer-encoding", "host")
                ),
                field_values.map(lambda v: v.strip(" \t")),
            ),
            max_size=6,
        )
    )
    body = draw(st.binary(max_size=200))
    version = draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
    return HttpRequest(method, draw(targets), version, tuple(headers), body)


def wire(request: HttpRequest) -> bytes:
    lines = [f"{request.method} {request.target} {request.version}"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    if request.body:
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


def with_length(request: HttpRequest) -> HttpRequest:
    if not request.body:
        return request
    length = ("content-length", str(len(request.body)))
    return HttpRequest(
        request.method, request.target, request.version, (*request.headers, length), request.body
    )


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes_only_produce_requests_or_errors(messages: list[bytes]) -> None:
    parser = RequestParser(2048, max_head_size=512, max_headers=8)
    for message in messages:
        for item in parser.feed(message):
            assert isinstance(item, HttpRequest | HttpError)
            if isinstance(item, HttpError):
                assert item.status in (400, 411, 413, 414, 431, 501, 505)
                item.response().serialize()
        assert parser.buffered <= 512 + 2048


@settings(max_examples=200)
@given(st.lists(st.text(st.sampled_from("GET /PH1.\r\n :0Content-Lngth\x00é"), max_size=60)))
def test_request_like_text_only_produces_requests_or_errors(messages: list[str]) -> None:
    parser = RequestParser(1024, max_head_size=256)
    for message in messages:
        for item in parser.feed(message.encode()):
            assert isinstance(item, HttpRequest | HttpError)


@given(st.lists(requests(), min_size=1, max_size=4), st.data())
def test_any_split_of_good_requests_parses_the_same(
    originals: list[HttpRequest], data: st.DataObject
) -> None:
    stream = b"".join(wire(r) for r in originals)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=10)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    parser = RequestParser()
    got: list[HttpRequest | HttpError] = []
    for piece in pieces:
        got += parser.feed(piece)
    assert got == [with_length(r) for r in originals]
    assert parser.idle


@given(st.text(max_size=60))
def test_parse_path_only_raises_protocol_errors(target: str) -> None:
    try:
        path = parse_path(target)
    except HttpProtocolError as exc:
        assert exc.error.status == 400
        return
    for segment in path.segments:
        assert segment not in ("", ".", "..")
        assert "/" not in segment and "\\" not in segment and "\x00" not in segment
    assert parse_path(path.encoded()).segments == path.segments
