"""RequestParser: framing, limits, bad input and recovery (RFC 9112)."""

from __future__ import annotations

import pytest

from avatar_mf.http import HttpError, HttpRequest, RequestParser

GET = b"GET /index.html HTTP/1.1\r\nHost: mf\r\n\r\n"


def requests(items: list[HttpRequest | HttpError]) -> list[HttpRequest]:
    assert all(isinstance(item, HttpRequest) for item in items), items
    return [item for item in items if isinstance(item, HttpRequest)]


def error(items: list[HttpRequest | HttpError]) -> HttpError:
    [item] = items
    assert isinstance(item, HttpError), item
    return item


def statuses(items: list[HttpRequest | HttpError]) -> list[int | str]:
    return [item.status if isinstance(item, HttpError) else item.target for item in items]


# --------------------------------------------------------------------------- good requests


def test_simple_get() -> None:
    [request] = requests(RequestParser().feed(GET))
    assert request == HttpRequest("GET", "/index.html", "HTTP/1.1", (("host", "mf"),), b"")
    assert request.header("HOST") == "mf"


def test_request_split_across_messages_byte_by_byte() -> None:
    parser = RequestParser()
    data = b"POST /upload HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    out: list[HttpRequest | HttpError] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert out == []
    [request] = requests(out)
    assert request.body == b"hello"
    assert parser.idle


def test_pipelined_requests_in_one_message() -> None:
    data = (
        GET + b"HEAD /app.js HTTP/1.1\r\n\r\n" + b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
    )
    got = requests(RequestParser().feed(data))
    assert [(r.method, r.target, r.body) for r in got] == [
        ("GET", "/index.html", b""),
        ("HEAD", "/app.js", b""),
        ("POST", "/x", b"ok"),
    ]


def test_second_request_completes_in_the_next_message() -> None:
    parser = RequestParser()
    assert statuses(parser.feed(GET + b"GET /a HT")) == ["/index.html"]
    assert parser.buffered == len(b"GET /a HT")
    assert statuses(parser.feed(b"TP/1.1\r\n\r\n")) == ["/a"]


def test_header_values_and_names() -> None:
    data = (
        b"GET / HTTP/1.1\r\nAccept:text/html  \r\nX-Multi: a\r\nx-multi:  b\r\n"
        b"X-Latin: caf\xe9\r\nEmpty:\r\n\r\n"
    )
    [request] = requests(RequestParser().feed(data))
    assert request.headers == (
        ("accept", "text/html"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("x-latin", "caf\xe9"),
        ("empty", ""),
    )
    assert request.header("X-Multi") == "a, b"
    assert request.header_values("x-multi") == ["a", "b"]
    assert request.header("missing") is None


def test_bare_lf_line_ends_and_leading_empty_lines_are_accepted() -> None:
    parser = RequestParser()
    [request] = requests(parser.feed(b"\r\n\n\r\nGET /lf HTTP/1.1\nHost: x\n\n"))
    assert request.target == "/lf"
    assert request.headers == (("host", "x"),)


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1", "HTTP/1.9"])
def test_http_1x_versions(version: str) -> None:
    [request] = requests(RequestParser().feed(f"GET / {version}\r\n\r\n".encode()))
    assert request.version == version


@pytest.mark.parametrize(
    "target",
    ["/", "/a/b.js?x=1&y=%20", "http://mf.example/index.html", "HTTPS://h:8443/x", "*"],
)
def test_target_forms(target: str) -> None:
    method = "OPTIONS" if target == "*" else "GET"
    [request] = requests(RequestParser().feed(f"{method} {target} HTTP/1.1\r\n\r\n".encode()))
    assert request.target == target


def test_repeated_identical_content_length_is_accepted() -> None:
    data = b"PUT / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"
    [request] = requests(RequestParser().feed(data))
    assert request.body == b"abc"


def test_empty_input() -> None:
    parser = RequestParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"\r\n\r\n") == []
    assert parser.idle


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\n\r\n",  # HTTP/0.9 style
        b"GET  / HTTP/1.1\r\n\r\n",  # two spaces
        b"GET / HTTP/1.1 \r\n\r\n",  # trailing space
        b"G(T / HTTP/1.1\r\n\r\n",  # method not a token
        b"GET /\x7f HTTP/1.1\r\n\r\n",  # DEL in target
        b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",  # raw non-ASCII target
        b"GET / HTTP/1\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"GET / HTTP/1.10\r\n\r\n",
        b"GET index.html HTTP/1.1\r\n\r\n",  # not origin-, absolute- or asterisk-form
        b"GET * HTTP/1.1\r\n\r\n",  # asterisk-form outside OPTIONS
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # RFC 9112 3.2
        b"\x00\x01\x02\r\n\r\n",
    ],
)
def test_malformed_request_line_is_400_and_recoverable(data: bytes) -> None:
    parser = RequestParser()
    assert statuses(parser.feed(data + GET)) == [400, "/index.html"]


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0"])
def test_other_major_versions_are_505(version: str) -> None:
    parser = RequestParser()
    out = parser.feed(f"GET / {version}\r\n\r\n".encode() + GET)
    assert statuses(out) == [505, "/index.html"]
    assert isinstance(out[0], HttpError) and out[0].recoverable


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon (RFC 9112 5.1)
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  # obs-fold (RFC 9112 5.2)
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Esc: a\x1bb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Cr: a\rb\r\n\r\n",  # bare CR (RFC 9112 2.2)
    ],
)
def test_malformed_fields_without_framing_fields_are_400_and_recoverable(data: bytes) -> None:
    parser = RequestParser()
    out = parser.feed(data + GET)
    assert statuses(out) == [400, "/index.html"]
    assert isinstance(out[0], HttpError) and out[0].recoverable


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nBad Name: x\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nX: a\rContent-Length: 3\r\n\r\nabc",  # bare CR hiding a field
        b"POST / HTTP/1.1\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n\r\n",
    ],
)
def test_unusable_framing_is_400_and_loses_framing(data: bytes) -> None:
    parser = RequestParser()
    item = error(parser.feed(data + GET))  # the GET in the same message is dropped
    assert item.status == 400
    assert not item.recoverable
    assert statuses(parser.feed(GET)) == ["/index.html"]


def test_chunked_request_is_411() -> None:
    item = error(RequestParser().feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"))
    assert (item.status, item.recoverable) == (411, False)


def test_unknown_coding_before_chunked_is_501() -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    item = error(RequestParser().feed(data))
    assert (item.status, item.recoverable) == (501, False)


def test_after_lost_framing_the_next_request_message_parses() -> None:
    parser = RequestParser()
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n"
    assert statuses(parser.feed(data + GET)) == [411]  # the rest of this message is dropped
    assert parser.feed(b"1a\r\nmore chunk data\r\n") == []  # not a request start: ignored
    assert parser.feed(b"\x00\x01binary") == []
    assert statuses(parser.feed(GET)) == ["/index.html"]
    assert statuses(parser.feed(b"\r\nGET /b HTTP/1.1\r\n\r\n")) == ["/b"]


# --------------------------------------------------------------------------- limits


def test_content_over_max_size_is_413_and_skipped() -> None:
    parser = RequestParser(1000)
    head = b"POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"
    out = parser.feed(head + b"x" * 1000)
    item = error(out)
    assert (item.status, item.recoverable) == (413, True)
    for _ in range(3):
        assert parser.feed(b"y" * 1000) == []
    assert statuses(parser.feed(b"z" * 1000 + GET)) == ["/index.html"]


def test_max_size_counts_the_head() -> None:
    head = b"POST / HTTP/1.1\r\nContent-Length: 60\r\n\r\n"
    exact = RequestParser(len(head) + 60).feed(head + b"a" * 60)
    assert [type(item) for item in exact] == [HttpRequest]
    over = RequestParser(len(head) + 59).feed(head + b"a" * 60)
    assert statuses(over) == [413]


def test_absurd_content_length_is_413_without_skipping() -> None:
    parser = RequestParser()
    item = error(parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 1" + b"0" * 5000 + b"\r\n\r\n"))
    assert (item.status, item.recoverable) == (413, False)
    assert statuses(parser.feed(GET)) == ["/index.html"]


def test_header_section_over_limit_is_431() -> None:
    parser = RequestParser(max_head_size=256)
    data = b"GET / HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 300 + b"\r\n\r\n"
    item = error(parser.feed(data))
    assert (item.status, item.recoverable) == (431, False)
    assert statuses(parser.feed(GET)) == ["/index.html"]


def test_header_section_over_limit_across_messages_is_431() -> None:
    parser = RequestParser(max_head_size=256)
    assert parser.feed(b"GET / HTTP/1.1\r\n") == []
    out: list[HttpRequest | HttpError] = []
    for _ in range(20):
        out += parser.feed(b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n")
    assert statuses(out) == [431]
    assert parser.buffered == 0


def test_too_many_header_fields_is_431() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 11 + b"\r\n"
    assert statuses(RequestParser(max_headers=10).feed(data)) == [431]
    assert statuses(RequestParser(max_headers=11).feed(data)) == ["/"]


def test_long_request_line_is_414() -> None:
    parser = RequestParser(max_head_size=128)
    item = error(parser.feed(b"GET /" + b"a" * 200))
    assert (item.status, item.recoverable) == (414, False)
    assert statuses(parser.feed(GET)) == ["/index.html"]


def test_long_garbage_is_400() -> None:
    assert statuses(RequestParser(max_head_size=128).feed(b"\xff" * 200)) == [400]


def test_head_limit_is_capped_by_max_size() -> None:
    parser = RequestParser(100, max_head_size=10_000)
    assert parser.max_head_size == 100


def test_limits_must_be_usable() -> None:
    with pytest.raises(ValueError):
        RequestParser(8)


def test_error_responses_carry_the_status() -> None:
    item = error(RequestParser().feed(b"GET / HTTP/2.0\r\n\r\n"))
    response = item.response()
    assert response.status == 505
    wire = response.serialize()
    assert wire.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert b"Content-Length: " in wire


# --------------------------------------------------------------------------- work per message


def test_a_message_of_many_bad_requests_yields_a_few_errors_then_is_dropped() -> None:
    """Issue 9: 256 KB of tiny bad requests in one message gave one error each (~14000)."""
    bad = b"BAD\r\n\r\n"  # a complete, malformed head: recoverable, 400
    message = bad * (256 * 1024 // len(bad))
    parser = RequestParser()
    out = parser.feed(message)
    assert statuses(out) == [400] * parser.max_errors_per_message
    assert [item.recoverable for item in out if isinstance(item, HttpError)][-1] is False
    assert parser.buffered == 0  # the rest of the message was dropped, not kept
    assert requests(parser.feed(GET))[0].target == "/index.html"  # the next message parses


def test_a_message_of_too_many_requests_is_cut_with_429() -> None:
    parser = RequestParser(max_requests_per_message=3)
    out = parser.feed(GET * 10)
    assert statuses(out) == ["/index.html"] * 3 + [429]
    assert parser.buffered == 0
    assert statuses(parser.feed(GET * 3)) == ["/index.html"] * 3  # the budget is per message


def test_errors_below_the_budget_keep_the_rest_of_the_message() -> None:
    parser = RequestParser(max_errors_per_message=3)
    assert statuses(parser.feed(b"BAD\r\n\r\n" * 2 + GET)) == [400, 400, "/index.html"]
