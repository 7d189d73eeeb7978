"""HttpResponse serialization and request-target normalisation."""

from __future__ import annotations

import pytest

from avatar_mf.http import (
    HttpError,
    HttpProtocolError,
    HttpResponse,
    RequestPath,
    error_response,
    http_date,
    parse_path,
    reason_phrase,
)

# --------------------------------------------------------------------------- responses


def test_serialize_always_has_content_length() -> None:
    wire = HttpResponse(200, headers=(("Content-Type", "text/plain"),), body=b"hi").serialize()
    assert wire == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    assert HttpResponse(404).serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def test_head_keeps_the_length_and_drops_the_body() -> None:
    response = HttpResponse(200, body=b"hello")
    assert response.serialize(head=True) == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    proxied = HttpResponse(200, content_length=1234)
    assert proxied.serialize(head=True).endswith(b"Content-Length: 1234\r\n\r\n")
    assert proxied.serialize().endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("status", [100, 204, 304])
def test_responses_without_content_have_no_content_length(status: int) -> None:
    wire = HttpResponse(status, headers=(("ETag", '"x"'),)).serialize()
    assert b"Content-Length" not in wire
    assert wire.endswith(b"\r\n\r\n")


def test_custom_reason_and_unregistered_status() -> None:
    assert HttpResponse(200, "Fine").serialize().startswith(b"HTTP/1.1 200 Fine\r\n")
    assert HttpResponse(599).serialize().startswith(b"HTTP/1.1 599 \r\n")
    assert reason_phrase(599) == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 99},
        {"status": 600},
        {"status": 200, "reason": "OK\r\nX: y"},
        {"status": 200, "headers": (("X-Bad", "a\r\nInjected: 1"),)},
        {"status": 200, "headers": (("Bad Name", "v"),)},
        {"status": 200, "headers": (("X", "\u20ac"),)},  # not latin-1
        {"status": 200, "headers": (("Content-Length", "5"),)},
        {"status": 200, "headers": (("transfer-encoding", "chunked"),)},
        {"status": 204, "body": b"x"},
        {"status": 304, "body": b"x"},
        {"status": 200, "content_length": -1},
    ],
)
def test_unsafe_responses_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HttpResponse(**kwargs)  # type: ignore[arg-type]


def test_error_response_and_http_error() -> None:
    response = error_response(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
    assert response.header("allow") == "GET, HEAD"
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.body == b"405 Method Not Allowed: only GET and HEAD\n"
    error = HttpError(431, "too big", recoverable=False)
    assert error.response().status == 431


def test_http_date() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 5.6.7


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("target", "expected", "key"),
    [
        ("/", RequestPath((), True), "index.html"),
        ("/app.js", RequestPath(("app.js",), False), "app.js"),
        ("/img/", RequestPath(("img",), True), "img/index.html"),
        ("/a%20b.css?v=2", RequestPath(("a b.css",), False, "v=2"), "a b.css"),
        ("/x?", RequestPath(("x",), False, ""), "x"),
        ("/%E2%82%AC", RequestPath(("\u20ac",), False), "\u20ac"),
        ("/...", RequestPath(("...",), False), "..."),
        ("/a.b#frag", RequestPath(("a.b",), False), "a.b"),
        ("http://mf.example", RequestPath((), True), "index.html"),
        ("http://mf.example?q", RequestPath((), True, "q"), "index.html"),
        ("https://user@mf.example:8443/a/b", RequestPath(("a", "b"), False), "a/b"),
    ],
)
def test_parse_path(target: str, expected: RequestPath, key: str) -> None:
    path = parse_path(target)
    assert path == expected
    assert path.key() == key


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/./index.html",
        "/%2e%2e/etc/passwd",
        "/%2E%2e/%2e%2E/etc/passwd",
        "/.%2e/x",
        "/a/%2e",
        "/..%2fetc%2fpasswd",
        "/a%2Fb",
        "/a%5c..%5cb",
        "/a\\b",
        "/index.html%00.png",
        "/%00",
        "/%0d%0aSet-Cookie:x",
        "/%7f",
        "/%c2%85",  # C1 control (NEL)
        "/%ff",  # not UTF-8
        "/%c0%ae%c0%ae/",  # overlong UTF-8 for ".."
        "/%zz",
        "/%4",
        "/%",
        "//etc/passwd",
        "/a//b",
        "",
        "index.html",
        "*",
        "mf.example:443",
        "file:///etc/passwd",
        "ftp://h/x",
        "/a b",
        "/\x00",
    ],
)
def test_unsafe_paths_are_400(target: str) -> None:
    with pytest.raises(HttpProtocolError) as excinfo:
        parse_path(target)
    assert excinfo.value.error.status == 400


def test_encoded_path_is_canonical() -> None:
    assert parse_path("/a%20b/%E2%82%AC/c:d@e!/").encoded() == "/a%20b/%E2%82%AC/c:d@e!/"
    assert parse_path("/%41%7e").encoded() == "/A~"
    assert parse_path("/").encoded() == "/"
