"""The bootstrap data channel service: static app, errors, message splitting, proxy mode."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
from aiohttp import web

from avatar_mf.bootstrap.service import (
    MAX_BACKLOG,
    AppSource,
    AppSourceError,
    BootstrapService,
    HttpProxy,
    bootstrap_service_factory,
)
from avatar_mf.channels.base import ChannelService, ServiceFactory
from avatar_mf.config import BootstrapConfig
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock

SHIPPED = resources.files("avatar_mf").joinpath("dcapp")
STEP = 5.0  # upper bound of any single wait (the tests take milliseconds)


# --------------------------------------------------------------------------- helpers


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_responses(stream: bytes, heads: Iterator[bool] | None = None) -> list[Response]:
    """Split a byte stream into HTTP responses, framed as a UE would: by Content-Length
    (no content for HEAD answers, 1xx, 204 and 304). Fails on anything left over."""
    out: list[Response] = []
    while stream:
        head_end = stream.index(b"\r\n\r\n")
        lines = stream[:head_end].decode("latin-1").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            assert name.lower() not in headers, f"duplicate {name}"
            headers[name.lower()] = value
        code = int(status)
        rest = stream[head_end + 4 :]
        is_head = next(heads) if heads is not None else False
        if is_head or code < 200 or code in (204, 304):
            length = 0
        else:
            length = int(headers["content-length"])
        assert len(rest) >= length, "truncated response"
        out.append(Response(code, reason, headers, rest[:length]))
        stream = rest[length:]
    return out


def received(channel: RecordingChannel, heads: list[bool] | None = None) -> list[Response]:
    assert all(isinstance(m, bytes) for m in channel.sent)
    data = b"".join(m for m in channel.sent if isinstance(m, bytes))
    return parse_responses(data, iter(heads) if heads is not None else None)


def get(target: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: mf", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def make_channel(max_message_size: int = 65536) -> RecordingChannel:
    return RecordingChannel(
        info=channel_info(stream_id=10, subprotocol="http", max_message_size=max_message_size)
    )


@pytest.fixture(scope="module")
def shipped_app() -> AppSource:
    return AppSource.shipped()


@pytest.fixture
def channel() -> RecordingChannel:
    return make_channel()


@pytest.fixture
def service(channel: RecordingChannel, shipped_app: AppSource) -> BootstrapService:
    return BootstrapService(channel, app=shipped_app)


def ask(service: BootstrapService, channel: RecordingChannel, request: bytes) -> Response:
    channel.sent.clear()
    service.on_message(request)
    [response] = received(channel, [request.startswith(b"HEAD ")])
    return response


# --------------------------------------------------------------------------- static app


def test_the_service_is_a_channel_service(service: BootstrapService) -> None:
    as_service: ChannelService = service
    factory: ServiceFactory = bootstrap_service_factory(BootstrapConfig())
    assert as_service is service and callable(factory)


def test_get_root_returns_the_shipped_index(
    service: BootstrapService, channel: RecordingChannel
) -> None:
    response = ask(service, channel, get("/"))
    assert response.status == 200
    assert response.body == SHIPPED.joinpath("index.html").read_bytes()
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("content-length") == str(len(response.body))
    assert response.header("etag")
    assert response.header("date") is None  # no wall clock injected


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
def test_shipped_assets_with_content_types(
    service: BootstrapService, channel: RecordingChannel, name: str, content_type: str
) -> None:
    response = ask(service, channel, get(f"/{name}?v=1"))
    assert response.status == 200
    assert response.header("content-type") == content_type
    assert response.header("x-content-type-options") == "nosniff"
    assert response.body == SHIPPED.joinpath(name).read_bytes()


def test_shipped_app_is_small_static_and_self_contained(shipped_app: AppSource) -> None:
    assert set(shipped_app.names) == {"index.html", "app.js", "style.css"}
    # app.js bundles three.js (web/, docs/browser.md): under 1 MiB, loaded once per call.
    assert shipped_app.size < 1024 * 1024
    index = shipped_app.file("index.html")
    assert index is not None
    for name in ("index.html", "style.css"):
        found = shipped_app.file(name)
        assert found is not None
        text = found.body.decode("utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert b'src="app.js"' in index.body and b'href="style.css"' in index.body
    app_js = shipped_app.file("app.js")
    assert app_js is not None and b"3gpp-ar-metadata" in app_js.body


def test_unknown_file_is_404(service: BootstrapService, channel: RecordingChannel) -> None:
    assert ask(service, channel, get("/missing.js")).status == 404
    assert ask(service, channel, get("/index.html/")).status == 404
    assert ask(service, channel, get("/.hidden")).status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2Fetc%2Fpasswd",
        "/..%5c..%5cetc%5cpasswd",
        "/index.html%00.png",
        "/%00",
        "//etc/passwd",
        "/%c0%ae%c0%ae/etc/passwd",
        "/%zz",
        "http://mf/../etc/passwd",
    ],
)
def test_traversal_attempts_are_refused(
    service: BootstrapService, channel: RecordingChannel, target: str
) -> None:
    response = ask(service, channel, get(target))
    assert response.status == 400
    assert b"root:" not in response.body
    assert ask(service, channel, get("/")).status == 200  # the channel still works


def test_absolute_form_target(service: BootstrapService, channel: RecordingChannel) -> None:
    assert ask(service, channel, get("http://mf.example/app.js")).status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT"])
def test_other_methods_are_405_with_allow(
    service: BootstrapService, channel: RecordingChannel, method: str
) -> None:
    target = "mf:443" if method == "CONNECT" else "/"
    response = ask(service, channel, get(target, method=method))
    assert response.status == 405
    assert response.header("allow") == "GET, HEAD"


def test_head_has_no_body(service: BootstrapService, channel: RecordingChannel) -> None:
    channel.sent.clear()
    service.on_message(get("/app.js", method="HEAD") + get("/style.css"))
    head, css = received(channel, [True, False])
    size = len(SHIPPED.joinpath("app.js").read_bytes())
    assert (head.status, head.body, head.header("content-length")) == (200, b"", str(size))
    assert head.header("content-type") == "text/javascript; charset=utf-8"
    assert css.body == SHIPPED.joinpath("style.css").read_bytes()


def test_conditional_get_is_304(service: BootstrapService, channel: RecordingChannel) -> None:
    etag = ask(service, channel, get("/app.js")).header("etag")
    assert etag is not None
    response = ask(service, channel, get("/app.js", f'If-None-Match: W/{etag}, "other"'))
    assert (response.status, response.body, response.header("etag")) == (304, b"", etag)
    assert response.header("content-length") is None
    assert ask(service, channel, get("/app.js", 'If-None-Match: "stale"')).status == 200


def test_pipelined_and_split_requests_are_answered_in_order(
    service: BootstrapService, channel: RecordingChannel
) -> None:
    data = get("/app.js") + get("/nope") + get("/style.css") + get("/", method="HEAD")
    for i in range(0, len(data), 7):
        service.on_message(data[i : i + 7])
    got = received(channel, [False, False, False, True])
    assert [r.status for r in got] == [200, 404, 200, 200]
    assert got[2].body == SHIPPED.joinpath("style.css").read_bytes()


def test_text_messages_are_accepted(service: BootstrapService, channel: RecordingChannel) -> None:
    service.on_message(get("/").decode())
    assert [r.status for r in received(channel)] == [200]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000, 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 411),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None),  # not HTTP: no answer yet
    ],
)
def test_bad_requests_get_their_status_and_the_channel_keeps_working(
    service: BootstrapService, channel: RecordingChannel, request_bytes: bytes, status: int | None
) -> None:
    service.on_message(request_bytes)
    got = received(channel)
    assert [r.status for r in got] == ([status] if status else [])
    channel.sent.clear()
    service.on_message(b"\r\n\r\n" if status is None else b"")  # ends a garbage head, if any
    channel.sent.clear()
    service.on_message(get("/"))
    assert [r.status for r in received(channel)] == [200]


def test_a_message_of_tiny_bad_requests_costs_a_few_bounded_answers(
    service: BootstrapService, channel: RecordingChannel
) -> None:
    """Issue 9: a 256 KB message of tiny bad requests drew 16-37x its size in error answers
    (one per request); now a message draws at most the parser's error budget."""
    message = b"X\r\n\r\n" * (256 * 1024 // 5)
    service.on_message(message)
    got = received(channel)
    assert 1 <= len(got) <= 4 and {r.status for r in got} == {400}
    sent = sum(len(m) for m in channel.sent)
    assert sent < 4 * 1024, f"{sent} bytes answered to one message"
    assert service.errors == len(got)
    channel.sent.clear()
    service.on_message(get("/"))  # the channel still serves
    assert [r.status for r in received(channel)] == [200]


def test_oversized_request_split_over_messages_is_413_then_works(
    channel: RecordingChannel, shipped_app: AppSource
) -> None:
    service = BootstrapService(channel, app=shipped_app, max_request_size=4096)
    service.on_message(b"PUT /x HTTP/1.1\r\nContent-Length: 20000\r\n\r\n")
    assert [r.status for r in received(channel)] == [413]
    for _ in range(19):
        service.on_message(b"y" * 1000)
    service.on_message(b"y" * 1000 + get("/style.css"))
    assert [r.status for r in received(channel)] == [413, 200]
    assert service.errors == 1 and service.requests == 1


@pytest.mark.parametrize("size", [1024, 300, 64])
def test_responses_are_split_to_the_max_message_size(shipped_app: AppSource, size: int) -> None:
    channel = make_channel(max_message_size=size)
    service = BootstrapService(channel, app=shipped_app)
    service.on_message(get("/") + get("/app.js") + get("/style.css") + get("/x"))
    assert len(channel.sent) > 4
    assert all(len(m) <= size for m in channel.sent)  # RecordingChannel also checks this
    got = received(channel)
    assert [r.status for r in got] == [200, 200, 200, 404]
    for response, name in zip(got, ["index.html", "app.js", "style.css"], strict=False):
        assert response.body == SHIPPED.joinpath(name).read_bytes()


def test_no_max_message_size_means_64k_messages(tmp_path: Path) -> None:
    big = write_app(tmp_path, {"index.html": b"i", "big.bin": b"\x00" * 200_000})
    channel = make_channel(max_message_size=0)
    BootstrapService(channel, app=big).on_message(get("/big.bin"))
    assert [len(m) for m in channel.sent[:3]] == [65536, 65536, 65536]
    [response] = received(channel)
    assert response.body == b"\x00" * 200_000
    assert response.header("content-type") == "application/octet-stream"


def test_date_header_from_the_injected_clock(
    channel: RecordingChannel, shipped_app: AppSource
) -> None:
    service = BootstrapService(channel, app=shipped_app, wall_clock=lambda: 784111777.0)
    response = ask(service, channel, get("/"))
    assert response.header("date") == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert ask(service, channel, b"BAD\r\n\r\n").header("date") is not None


def test_sending_waits_while_the_channel_is_congested(shipped_app: AppSource) -> None:
    channel = make_channel(max_message_size=1024)
    clock = FakeClock()
    service = BootstrapService(channel, app=shipped_app, clock=clock)
    channel.buffered = 10**6
    service.on_message(get("/app.js"))
    assert channel.sent == [] and clock.pending == 1
    clock.advance(1.0)
    assert channel.sent == [] and clock.pending == 1  # still congested: one timer re-armed
    channel.buffered = 0
    clock.advance(1.0)
    assert [r.status for r in received(channel)] == [200]
    assert clock.pending == 0


def test_a_ue_that_does_not_read_cannot_grow_the_backlog(shipped_app: AppSource) -> None:
    channel = make_channel()
    service = BootstrapService(channel, app=shipped_app, clock=FakeClock())
    channel.buffered = 10**9
    index = len(SHIPPED.joinpath("index.html").read_bytes())
    for _ in range(2 * MAX_BACKLOG // index):
        service.on_message(get("/"))
    assert service.dropped > 0
    assert service.requests + service.dropped == 2 * MAX_BACKLOG // index


def test_closed_service_ignores_messages_and_cancels_timers(shipped_app: AppSource) -> None:
    channel = make_channel()
    clock = FakeClock()
    service = BootstrapService(channel, app=shipped_app, clock=clock)
    channel.buffered = 10**6
    service.on_message(get("/"))
    service.on_close()
    assert clock.pending == 0
    channel.buffered = 0
    service.on_message(get("/"))
    clock.advance(1)
    assert channel.sent == []


# --------------------------------------------------------------------------- app folders


def write_app(root: Path, files: dict[str, bytes]) -> AppSource:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return AppSource.from_directory(root)


def test_configured_app_dir(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write_app(app, {"index.html": b"<p>mine</p>", "js/x.mjs": b"export {}", "a b.svg": b"<svg/>"})
    factory = bootstrap_service_factory(BootstrapConfig(app_dir=app))
    channel = make_channel()
    service = factory(channel)
    assert ask(service, channel, get("/")).body == b"<p>mine</p>"
    mjs = ask(service, channel, get("/js/x.mjs"))
    assert mjs.header("content-type") == "text/javascript; charset=utf-8"
    assert ask(service, channel, get("/a%20b.svg")).header("content-type") == "image/svg+xml"
    assert ask(service, channel, get("/")).header("date") is not None  # the factory's clock


def test_folder_without_trailing_slash_redirects(tmp_path: Path) -> None:
    app = write_app(tmp_path, {"index.html": b"root", "sub/index.html": b"sub"})
    channel = make_channel()
    service = BootstrapService(channel, app=app)
    response = ask(service, channel, get("/sub?x=1"))
    assert (response.status, response.header("location")) == (301, "/sub/?x=1")
    assert ask(service, channel, get("/sub/")).body == b"sub"


def test_symlinks_out_of_the_folder_are_not_served(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.txt").write_bytes(b"leak")
    root = tmp_path / "app"
    root.mkdir()
    (root / "index.html").write_bytes(b"index")
    (root / "passwd").symlink_to(secret)
    (root / "dir").symlink_to(outside, target_is_directory=True)
    (root / "alias.html").symlink_to(root / "index.html")
    (root / "broken").symlink_to(tmp_path / "nothing")
    app = AppSource.from_directory(root)
    assert app.names == ("alias.html", "index.html")
    channel = make_channel()
    service = BootstrapService(channel, app=app)
    assert ask(service, channel, get("/passwd")).status == 404
    assert ask(service, channel, get("/dir/leak.txt")).status == 404
    assert ask(service, channel, get("/alias.html")).body == b"index"


def test_hidden_and_special_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(b"x")
    (tmp_path / ".env").write_bytes(b"SECRET=1")
    os.mkfifo(tmp_path / "fifo")
    app = write_app(tmp_path, {"index.html": b"i"})
    assert app.names == ("index.html",)


@pytest.mark.parametrize(
    ("files", "kwargs", "message"),
    [
        ({"app.js": b""}, {}, "no index.html"),
        ({"index.html": b"x" * 2000}, {"max_file_size": 1000}, "larger than 1000"),
        ({"index.html": b"x" * 600, "b": b"y" * 600}, {"max_total_size": 1000}, "larger than"),
        ({"index.html": b"", "a": b"", "b": b""}, {"max_files": 2}, "more than 2 files"),
    ],
)
def test_unusable_app_folders_fail_at_load(
    tmp_path: Path, files: dict[str, bytes], kwargs: dict[str, int], message: str
) -> None:
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    with pytest.raises(AppSourceError, match=message):
        AppSource.from_directory(tmp_path, **kwargs)


def test_missing_app_dir_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(AppSourceError):
        bootstrap_service_factory(BootstrapConfig(app_dir=tmp_path / "missing"))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(AppSourceError, match="not a directory"):
        AppSource.from_directory(tmp_path / "file")


def test_in_memory_names_are_checked() -> None:
    with pytest.raises(AppSourceError):
        AppSource({"index.html": b"", "../x": b""})
    assert AppSource({"index.html": b"", "100%.txt": b"%"}).file("100%.txt") is not None


# --------------------------------------------------------------------------- proxy mode


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"


@dataclass
class Upstream:
    url: str
    seen: list[web.Request]
    bodies: list[bytes]
    arrived: asyncio.Event


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen: list[web.Request] = []
    bodies: list[bytes] = []
    release = asyncio.Event()  # set at teardown: slow handlers end at once
    arrived = asyncio.Event()  # set by the first request

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        arrived.set()
        bodies.append(await request.read())
        name = request.match_info["name"]
        if name == "slow":
            try:
                async with asyncio.timeout(float(request.query.get("s", "5"))):
                    await release.wait()
            except TimeoutError:
                pass
            return web.Response(text="slow")
        if name == "missing":
            return web.Response(status=404, text="upstream says no", content_type="text/plain")
        if name == "big":
            return web.Response(body=b"b" * 5000)
        if name == "moved":
            raise web.HTTPFound("/apps/a1/app.js")
        if name == "echo":
            return web.Response(body=bodies[-1], headers={"X-Method": request.method})
        return web.Response(
            text=f"asset {name}",
            content_type="text/javascript",
            headers={"ETag": '"u1"', "X-Private": "drop me", "Connection": "X-Private"},
        )

    app = web.Application()
    app.router.add_route("*", "/apps/a1/{name:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Upstream(f"http://127.0.0.1:{port}/apps/a1/", seen, bodies, arrived)
    release.set()
    await runner.cleanup()


@pytest.fixture
async def proxied(
    upstream: Upstream,
) -> AsyncIterator[Callable[..., tuple[BootstrapService, RecordingChannel]]]:
    proxies: list[HttpProxy] = []

    def make(
        timeout: float = STEP, max_response_size: int = 1 << 20, url: str | None = None
    ) -> tuple[BootstrapService, RecordingChannel]:
        config = BootstrapConfig(
            replace_http_url=url or upstream.url,
            proxy_timeout=timeout,
            max_response_size=max(max_response_size, 1024),
        )
        factory = bootstrap_service_factory(config, wall_clock=None)
        assert isinstance(factory.app, HttpProxy)
        if max_response_size < 1024:
            factory.app.max_response_size = max_response_size
        proxies.append(factory.app)
        channel = make_channel(max_message_size=1024)
        return factory(channel), channel

    yield make
    for proxy in proxies:
        await proxy.aclose()


async def answers(
    channel: RecordingChannel, count: int, heads: list[bool] | None = None
) -> list[Response]:
    async with asyncio.timeout(STEP):
        while True:
            try:
                got = received(channel, heads)
            except (ValueError, AssertionError, KeyError):  # a response still incomplete
                got = []
            if len(got) >= count:
                assert len(got) == count
                return got
            await asyncio.sleep(0.005)


Proxied = Callable[..., tuple[BootstrapService, RecordingChannel]]


async def test_proxy_happy_path(proxied: Proxied, upstream: Upstream) -> None:
    service, channel = proxied()
    service.on_message(
        get(
            "/app.js?v=2",
            "Connection: keep-alive, X-Secret",
            "X-Secret: hop",
            "Keep-Alive: 5",
            "TE: trailers",
            "Proxy-Authorization: Basic eA==",
            "X-Ue: forwarded",
        )
    )
    [response] = await answers(channel, 1)
    assert response.status == 200
    assert response.body == b"asset app.js"
    assert response.header("content-type") == "text/javascript; charset=utf-8"
    assert response.header("etag") == '"u1"'
    assert response.header("x-private") is None  # named in the upstream's Connection
    assert response.header("connection") is None
    [seen] = upstream.seen
    assert seen.path_qs == "/apps/a1/app.js?v=2"
    for hop in ("X-Secret", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert hop not in seen.headers
    assert seen.headers["X-Ue"] == "forwarded"
    assert seen.headers["Via"] == "1.1 avatar-mf"
    assert seen.headers["Accept-Encoding"] == "identity"
    assert "User-Agent" not in seen.headers


async def test_proxy_root_and_post_body(proxied: Proxied, upstream: Upstream) -> None:
    service, channel = proxied()
    service.on_message(get("/") + b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nping")
    root, echo = await answers(channel, 2)
    assert root.body == b"asset "
    assert (echo.status, echo.body, echo.header("x-method")) == (200, b"ping", "POST")
    assert [r.path for r in upstream.seen] == ["/apps/a1/", "/apps/a1/echo"]


async def test_proxy_passes_upstream_404_through(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(get("/missing"))
    [response] = await answers(channel, 1)
    assert (response.status, response.body) == (404, b"upstream says no")


async def test_proxy_head_keeps_the_upstream_length(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(get("/big", method="HEAD"))
    [response] = await answers(channel, 1, [True])
    assert (response.status, response.body, response.header("content-length")) == (
        200,
        b"",
        "5000",
    )


async def test_proxy_follows_redirects(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(get("/moved"))
    [response] = await answers(channel, 1)
    assert (response.status, response.body) == (200, b"asset app.js")


async def test_upstream_down_is_502(proxied: Proxied) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service, channel = proxied(url=f"http://127.0.0.1:{port}/")
    service.on_message(get("/"))
    [response] = await answers(channel, 1)
    assert response.status == 502
    service.on_message(get("/again"))
    assert [r.status for r in await answers(channel, 2)] == [502, 502]


async def test_slow_upstream_is_504(proxied: Proxied) -> None:
    service, channel = proxied(timeout=0.2)
    service.on_message(get("/slow?s=5"))
    [response] = await answers(channel, 1)
    assert response.status == 504


async def test_too_large_upstream_response_is_502(proxied: Proxied) -> None:
    service, channel = proxied(max_response_size=1000)
    service.on_message(get("/big") + get("/small"))
    big, small = await answers(channel, 2)
    assert (big.status, small.status) == (502, 200)


async def test_proxied_answers_keep_request_order(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(get("/slow?s=0.3") + get("/fast") + get("/missing") + get("/../x"))
    got = await answers(channel, 4)
    assert [(r.status, r.body[:6]) for r in got] == [
        (200, b"slow"),
        (200, b"asset "),
        (404, b"upstre"),
        (400, b"400 Ba"),
    ]
    assert all(len(m) <= 1024 for m in channel.sent)


async def test_proxy_refuses_traversal_without_asking_upstream(
    proxied: Proxied, upstream: Upstream
) -> None:
    service, channel = proxied()
    service.on_message(get("/%2e%2e/%2e%2e/admin") + get("/x", method="TRACE"))
    got = await answers(channel, 2)
    assert [r.status for r in got] == [400, 405]
    assert upstream.seen == []


async def test_parse_errors_wait_for_earlier_proxied_answers(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(get("/slow?s=0.2") + b"GET / HTTP/3.0\r\n\r\n")
    assert [r.status for r in await answers(channel, 2)] == [200, 505]


async def test_closing_cancels_forwarding(proxied: Proxied, upstream: Upstream) -> None:
    service, channel = proxied()
    service.on_message(get("/slow?s=5") + get("/a") + get("/b"))
    async with asyncio.timeout(STEP):
        await upstream.arrived.wait()
    service.on_close()
    await asyncio.sleep(0.05)
    assert channel.sent == []


async def test_too_many_pending_requests_get_503(proxied: Proxied) -> None:
    service, channel = proxied()
    service.on_message(b"".join(get("/slow?s=0.02") for _ in range(40)))
    got = await answers(channel, 40)
    assert [r.status for r in got].count(200) == 32
    assert [r.status for r in got][32:] == [503] * 8


async def test_factory_aclose_closes_the_pool(upstream: Upstream) -> None:
    factory = bootstrap_service_factory(BootstrapConfig(replace_http_url=upstream.url))
    channel = make_channel()
    factory(channel).on_message(get("/x"))
    assert [r.status for r in await answers(channel, 1)] == [200]
    await factory.aclose()
    await factory.aclose()
