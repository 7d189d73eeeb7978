"""Bootstrap data channel service: HTTP/1.1 over a data channel (3GPP TS 26.114 6.2.10).

A UE opens bootstrap data channels (subprotocol ``http``, stream ids 0 and 10 towards the local
network, 100 and 110 towards the remote party) and sends HTTP requests on them, ``GET /`` first,
to download the data channel application (HTML/JS) through the MF. One
:class:`BootstrapService` runs per channel:

- requests are parsed with :class:`avatar_mf.http.RequestParser` (a request may span messages,
  a message may hold several requests); a bad request is answered with the status its
  :class:`~avatar_mf.http.HttpError` carries and the channel stays usable. One message yields
  at most 64 requests and 4 error answers (the parser's per-message budget): the rest of an
  abusive message is dropped, so the work and the error bytes a message costs are bounded;
- answers come from the application's :class:`AppSource` (files held in memory), or, when the
  controlling function gave a replacement URL (``replaceHttpUrl``, config
  ``bootstrap.replace_http_url``), from that URL through :class:`HttpProxy`;
- answers are sent in request order, each split into messages no larger than the peer's
  ``a=max-message-size`` (often 1024 bytes in IMS): the UE reassembles a response by its
  Content-Length. Sending pauses while the channel's SCTP buffer is above
  :data:`HIGH_WATER` bytes.

Decisions:

- **Files are held in memory**, loaded once when the factory is built (the shipped app is a few
  KiB; :data:`MAX_APP_BYTES` caps a configured one). Requests then never touch the disk: no
  blocking read on the event loop, no thread hop per asset, and no path ever reaches the file
  system, so a traversal attempt can only miss the in-memory table. Loading follows no
  symbolic link out of the folder, skips hidden names and anything but regular files. A change
  to ``app_dir`` needs a restart.
- **Paths** are decoded and normalised by :func:`avatar_mf.http.parse_path`: dot-segments,
  encoded slashes, backslashes, NUL and other control characters are refused with 400.
- **Proxying** (aiohttp) forwards GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS to the base
  URL with the request path appended, drops hop-by-hop fields (RFC 9110 7.6.1), adds ``Via``,
  follows up to :data:`MAX_REDIRECTS` redirects itself (the UE can reach nothing but the MF),
  passes content codings through untouched, shares no cookies between UEs, and caps the
  response at ``max_response_size`` (502). A connection failure is 502, a timeout 504. Up to
  :data:`PROXY_CONCURRENCY` requests per channel are in flight at once.
- **Bounded memory per channel**: at most :data:`MAX_PENDING_REQUESTS` requests wait for an
  answer (more get 503), and while more than :data:`MAX_BACKLOG` answer bytes wait to be sent
  (a UE that sends but does not read) new requests are dropped, as a stream server would stop
  reading.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from urllib.parse import quote

import aiohttp
from yarl import URL

from avatar_mf.channels.base import ChannelContext
from avatar_mf.clock import Clock, LoopClock, TimerHandle
from avatar_mf.config import BootstrapConfig
from avatar_mf.http import (
    HttpError,
    HttpProtocolError,
    HttpRequest,
    HttpResponse,
    RequestParser,
    RequestPath,
    error_response,
    http_date,
    parse_path,
)
from avatar_mf.http.parser import DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_SIZE

__all__ = [
    "CONTENT_TYPES",
    "AppFile",
    "AppSource",
    "AppSourceError",
    "BootstrapService",
    "BootstrapServiceFactory",
    "HttpProxy",
    "bootstrap_service_factory",
]

log = logging.getLogger(__name__)

#: The file answering a folder path (``/`` included).
INDEX = "index.html"
#: Where the shipped application lives inside the ``avatar_mf`` package.
SHIPPED_APP = "dcapp"
#: Largest application folder held in memory, in bytes (all files together).
MAX_APP_BYTES = 64 * 1024 * 1024
#: Most files an application folder may hold.
MAX_APP_FILES = 1024
#: Default largest single file / response body, in bytes (config max_response_size).
DEFAULT_MAX_RESPONSE_SIZE = 32 * 1024 * 1024

#: Requests per channel waiting for their answer; more are answered 503 at once.
MAX_PENDING_REQUESTS = 32
#: Forwarded requests in flight at once per channel (replace_http_url).
PROXY_CONCURRENCY = 4
#: Answer bytes per channel waiting to be sent beyond which new requests are dropped.
MAX_BACKLOG = 4 * 1024 * 1024
#: Sending pauses while the channel buffers more than this many bytes...
HIGH_WATER = 65536
#: ...and is retried after this many seconds.
RETRY_INTERVAL = 0.02
#: Message size used when the peer announced no a=max-message-size limit (0). RFC 8841 6.1
#: lets a peer that announced nothing receive 64 KiB; a bigger message gains nothing here.
DEFAULT_MESSAGE_SIZE = 65536
#: Redirects an upstream may answer before the UE gets 502.
MAX_REDIRECTS = 5
#: Methods forwarded to the replacement URL; others get 405.
PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: This hop, for the Via field of forwarded requests (RFC 9110 7.6.3).
VIA = "1.1 avatar-mf"

#: Content types by file extension (a fixed table: the host's mime.types must not change what
#: a UE receives). Anything else is application/octet-stream.
CONTENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".html": "text/html; charset=utf-8",
        ".htm": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".json": "application/json",
        ".map": "application/json",
        ".webmanifest": "application/manifest+json",
        ".txt": "text/plain; charset=utf-8",
        ".xml": "application/xml",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".gif": "image/gif",
        ".webp": "image/webp",
        ".avif": "image/avif",
        ".ico": "image/vnd.microsoft.icon",
        ".wasm": "application/wasm",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".glb": "model/gltf-binary",
        ".gltf": "model/gltf+json",
        ".bin": "application/octet-stream",
        ".zip": "application/zip",
        ".mp3": "audio/mpeg",
        ".ogg": "audio/ogg",
        ".wav": "audio/wav",
        ".mp4": "video/mp4",
        ".webm": "video/webm",
    }
)
_OCTET_STREAM = "application/octet-stream"

#: Fields a proxy never forwards (RFC 9110 7.6.1), besides those named in Connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request fields not forwarded: hop-by-hop, and what aiohttp sets for the upstream hop.
_DROP_REQUEST = HOP_BY_HOP | {"host", "content-length", "expect"}
#: Response fields not passed back: hop-by-hop, and the framing serialize() computes.
_DROP_RESPONSE = HOP_BY_HOP | {"content-length"}


def content_type(name: str) -> str:
    """The Content-Type served for file ``name``."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower(), _OCTET_STREAM)


# --------------------------------------------------------------------------- the app


class AppSourceError(Exception):
    """The application folder cannot be served (missing, too large, no index.html)."""


@dataclass(frozen=True, slots=True)
class AppFile:
    """One file of the application, as served."""

    body: bytes
    content_type: str
    etag: str
    """Strong entity tag (RFC 9110 8.8.3), quoted: a digest of the content."""


class AppSource:
    """The data channel application, held in memory and served for GET and HEAD.

    ``files`` maps relative names (``index.html``, ``img/logo.png``) to contents; it must hold
    :data:`INDEX`. Build one with :meth:`from_config`, :meth:`from_directory` or
    :meth:`shipped`: those read files, so call them at start-up or in a thread.
    """

    def __init__(self, files: Mapping[str, bytes], *, origin: str = "<memory>") -> None:
        self.origin = origin
        self._files: dict[str, AppFile] = {}
        for name, body in files.items():
            if not _is_servable_name(name):
                raise AppSourceError(f"{origin}: {name!r} cannot be served as a path")
            digest = hashlib.sha256(body).hexdigest()[:32]
            self._files[name] = AppFile(bytes(body), content_type(name), f'"{digest}"')
        if INDEX not in self._files:
            raise AppSourceError(f"{origin}: no {INDEX}")

    @classmethod
    def from_config(cls, config: BootstrapConfig) -> AppSource:
        """config.app_dir, else the shipped application; files up to max_response_size."""
        if config.app_dir is None:
            return cls.shipped(max_file_size=config.max_response_size)
        return cls.from_directory(config.app_dir, max_file_size=config.max_response_size)

    @classmethod
    def shipped(cls, *, max_file_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> AppSource:
        """The avatar call application shipped in the package (``avatar_mf/dcapp``)."""
        folder = resources.files("avatar_mf").joinpath(SHIPPED_APP)
        if isinstance(folder, Path):
            return cls.from_directory(folder, max_file_size=max_file_size)
        files = dict(_walk_traversable(folder, ""))  # zipped install: no symbolic links there
        _check_sizes(files, "avatar_mf:" + SHIPPED_APP, max_file_size, MAX_APP_BYTES)
        return cls(files, origin="avatar_mf:" + SHIPPED_APP)

    @classmethod
    def from_directory(
        cls,
        root: Path,
        *,
        max_file_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_total_size: int = MAX_APP_BYTES,
        max_files: int = MAX_APP_FILES,
    ) -> AppSource:
        """Read every regular, non-hidden file under ``root``.

        Symbolic links are followed only to files inside ``root`` (others are skipped with a
        warning); linked folders are not entered. Raises AppSourceError when ``root`` is not a
        readable folder, a file is larger than ``max_file_size``, all files together exceed
        ``max_total_size``, there are more than ``max_files`` files, or there is no index.html.
        """
        try:
            real_root = root.resolve(strict=True)
        except OSError as exc:
            raise AppSourceError(f"{root}: {exc.strerror or exc}") from None
        if not real_root.is_dir():
            raise AppSourceError(f"{root}: not a directory")
        files: dict[str, bytes] = {}
        try:
            for path in _walk_directory(real_root):
                name = path.relative_to(real_root).as_posix()
                if not _is_servable_name(name):
                    log.warning("app %s: skipping %r: not a usable URL path", root, name)
                    continue
                try:
                    real = path.resolve(strict=True)
                    info = real.stat()
                except OSError as exc:
                    log.warning("app %s: skipping %s: %s", root, name, exc.strerror or exc)
                    continue
                if not real.is_relative_to(real_root):
                    log.warning("app %s: skipping %s: links out of the folder", root, name)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue  # never open a FIFO or a device: the read could block
                if len(files) >= max_files:
                    raise AppSourceError(f"{root}: more than {max_files} files")
                _check_size(root, name, info.st_size, max_file_size)
                files[name] = real.read_bytes()
                _check_sizes(files, str(root), max_file_size, max_total_size)
        except OSError as exc:
            raise AppSourceError(f"{root}: {exc.strerror or exc}") from None
        return cls(files, origin=str(root))

    @property
    def names(self) -> tuple[str, ...]:
        """Every file name served, sorted."""
        return tuple(sorted(self._files))

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(len(f.body) for f in self._files.values())

    def file(self, name: str) -> AppFile | None:
        return self._files.get(name)

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The answer to ``request`` (the service serializes HEAD answers without content)."""
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
        try:
            path = parse_path(request.target)
        except HttpProtocolError as exc:
            return exc.error.response()
        name = path.key(INDEX)
        found = self._files.get(name)
        if found is None:
            if not path.directory and f"{name}/{INDEX}" in self._files:
                location = path.encoded() + "/"
                if path.query is not None:
                    location += "?" + path.query
                return HttpResponse(301, headers=(("Location", location),))
            return error_response(404, "no such file")
        validators = (("ETag", found.etag), ("Cache-Control", "no-cache"))
        if _etag_matches(request.header("if-none-match"), found.etag):
            return HttpResponse(304, headers=validators)
        return HttpResponse(
            200,
            headers=(
                ("Content-Type", found.content_type),
                *validators,
                ("X-Content-Type-Options", "nosniff"),
            ),
            body=found.body,
        )


def _is_servable_name(name: str) -> bool:
    """A relative name a request path can reach (no ``..``, empty or hidden segments)."""
    if not name or name.startswith("/"):
        return False
    try:
        path = parse_path("/" + quote(name, safe="/"))
    except HttpProtocolError:
        return False
    return not path.directory and path.key() == name


def _walk_directory(root: Path) -> Iterator[Path]:
    """Candidate files under ``root``, sorted; hidden names skipped, linked folders not entered."""

    def fail(exc: OSError) -> None:
        raise exc

    for folder, dirs, names in os.walk(root, onerror=fail, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield base / name


def _walk_traversable(folder: Traversable, prefix: str) -> Iterator[tuple[str, bytes]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk_traversable(entry, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield f"{prefix}{entry.name}", entry.read_bytes()


def _check_size(origin: object, name: str, size: int, limit: int) -> None:
    if size > limit:
        raise AppSourceError(f"{origin}: {name} is larger than {limit} bytes")


def _check_sizes(files: Mapping[str, bytes], origin: str, per_file: int, total: int) -> None:
    for name, body in files.items():
        _check_size(origin, name, len(body), per_file)
    if sum(len(body) for body in files.values()) > total:
        raise AppSourceError(f"{origin}: the application is larger than {total} bytes")


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against an If-None-Match list."""
    if if_none_match is None:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


# --------------------------------------------------------------------------- the proxy


class HttpProxy:
    """Forwards bootstrap requests to the replacement URL (``replaceHttpUrl``) with aiohttp.

    One per MF, shared by every channel (one connection pool); :meth:`aclose` at shutdown.
    :meth:`forward` never raises: failures become 502/504 answers.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url.with_password(None)}")
        #: Scheme, credentials, host and port, without path.
        self._origin = str(url.with_path("").with_query(None).with_fragment(None)).rstrip("/")
        self._base_path = url.raw_path.rstrip("/")
        self.timeout = timeout
        self.max_response_size = max_response_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """The base URL, without credentials (for logs)."""
        return str(URL(self._origin + self._base_path).with_user(None))

    def url_for(self, path: RequestPath) -> URL:
        """The upstream URL of a request path: base path + request path (+ query)."""
        text = self._origin + self._base_path + path.encoded()
        if path.query is not None:
            text += "?" + path.query
        return URL(text, encoded=True)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,  # content codings pass through, as in any proxy
                cookie_jar=aiohttp.DummyCookieJar(),  # UEs must never share cookies
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),  # forward() bounds the whole exchange
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close the connection pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def forward(self, request: HttpRequest) -> HttpResponse:
        """The upstream's answer to ``request``, or a 4xx/502/504 of the MF's own."""
        if request.method not in PROXY_METHODS:
            return error_response(
                405, "method not forwarded", (("Allow", ", ".join(PROXY_METHODS)),)
            )
        try:
            path = parse_path(request.target)
        except HttpProtocolError as exc:
            return exc.error.response()
        url = self.url_for(path)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(request, url)
        except TimeoutError:
            log.info("bootstrap proxy: %s %s timed out", request.method, url.with_user(None))
            return error_response(504, "the application repository did not answer in time")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.info("bootstrap proxy: %s %s failed: %r", request.method, url.with_user(None), exc)
            return error_response(502, "the application repository is unreachable")

    async def _exchange(self, request: HttpRequest, url: URL) -> HttpResponse:
        head = request.method == "HEAD"
        async with self._client().request(
            request.method,
            url,
            headers=_forwarded_request_headers(request),
            data=request.body or None,
            allow_redirects=True,
            max_redirects=MAX_REDIRECTS,
        ) as upstream:
            declared = upstream.content_length
            if not head and declared is not None and declared > self.max_response_size:
                return self._too_large(url)
            body = bytearray()
            async for chunk in upstream.content.iter_chunked(65536):
                body += chunk
                if len(body) > self.max_response_size:
                    return self._too_large(url)
            status = upstream.status
            no_content = status < 200 or status in (204, 304)
            return HttpResponse(
                status,
                upstream.reason or "",
                _passed_response_headers(upstream.raw_headers),
                b"" if no_content else bytes(body),
                content_length=declared if head and not no_content else None,
            )

    def _too_large(self, url: URL) -> HttpResponse:
        log.info(
            "bootstrap proxy: %s is larger than %d bytes",
            url.with_user(None),
            self.max_response_size,
        )
        return error_response(502, "the upstream response is too large")


def _connection_tokens(values: list[str]) -> set[str]:
    return {token.strip().lower() for value in values for token in value.split(",")}


def _forwarded_request_headers(request: HttpRequest) -> list[tuple[str, str]]:
    drop = _DROP_REQUEST | _connection_tokens(request.header_values("connection"))
    headers = [(name, value) for name, value in request.headers if name not in drop]
    if request.header("accept-encoding") is None:
        # No Accept-Encoding would let the upstream pick any coding (RFC 9110 12.5.3), which
        # would reach a UE that never asked for it: content codings are passed through.
        headers.append(("accept-encoding", "identity"))
    via = request.header("via")
    headers = [(name, value) for name, value in headers if name != "via"]
    headers.append(("via", f"{via}, {VIA}" if via else VIA))
    return headers


def _passed_response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[str, str], ...]:
    fields = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
    connection = [value for name, value in fields if name.lower() == "connection"]
    drop = _DROP_RESPONSE | _connection_tokens(connection)
    kept: list[tuple[str, str]] = []
    for name, value in fields:
        if name.lower() in drop:
            continue
        try:  # the same checks HttpResponse makes; one bad field must not lose the answer
            HttpResponse(200, headers=((name, value),))
        except ValueError:
            continue
        kept.append((name, value))
    return tuple(kept)


# --------------------------------------------------------------------------- the service


@dataclass(eq=False, slots=True)
class _Pending:
    """A request waiting for its turn to be answered."""

    head: bool
    request: HttpRequest | None = None
    """To forward, until forwarding starts."""
    wire: bytes | None = None
    """The serialized answer, once known."""
    task: asyncio.Task[HttpResponse] | None = None


class BootstrapService:
    """HTTP/1.1 on one bootstrap data channel (a ChannelService).

    ``app`` is where answers come from: an :class:`AppSource` (answers are immediate, computed
    in ``on_message``) or an :class:`HttpProxy` (answers arrive asynchronously and are sent in
    request order). ``clock`` schedules send retries under back-pressure (default: the running
    loop's). ``wall_clock`` (Unix seconds) adds a Date field to answers that lack one; None
    omits it.
    """

    def __init__(
        self,
        channel: ChannelContext,
        *,
        app: AppSource | HttpProxy,
        max_request_size: int = DEFAULT_MAX_SIZE,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._channel = channel
        self._app = app
        self._clock = clock
        self._wall_clock = wall_clock
        self._parser = RequestParser(
            max_request_size, max_head_size=min(DEFAULT_MAX_HEAD_SIZE, max_request_size)
        )
        size = channel.info.max_message_size
        self._message_size = size if size > 0 else DEFAULT_MESSAGE_SIZE
        self._pending: deque[_Pending] = deque()
        self._outbox: deque[bytes] = deque()
        self._backlog = 0  # bytes in _outbox plus serialized answers still in _pending
        self._in_flight = 0
        self._timer: TimerHandle | None = None
        self._closed = False
        self._label = f"call {channel.info.call_id} stream {channel.info.stream_id}"
        #: Requests answered, request errors answered, requests dropped (backlog full).
        self.requests = 0
        self.errors = 0
        self.dropped = 0

    # ------------------------------------------------------------------ ChannelService

    def on_message(self, data: str | bytes) -> None:
        if self._closed:
            return
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        for item in self._parser.feed(raw):
            self._on_item(item)
        self._flush()

    def on_close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for entry in self._pending:
            if entry.task is not None:
                entry.task.cancel()
        self._pending.clear()
        self._outbox.clear()
        self._backlog = 0

    # ------------------------------------------------------------------ requests

    def _on_item(self, item: HttpRequest | HttpError) -> None:
        if self._backlog > MAX_BACKLOG:
            if not self.dropped:
                log.warning("%s: the UE is not reading its answers; dropping requests", self._label)
            self.dropped += 1
            return
        if isinstance(item, HttpError):
            self.errors += 1
            log.debug(  # counted in self.errors; a UE must not be able to flood the log
                "%s: bad request: %d %s%s",
                self._label,
                item.status,
                item.detail,
                "" if item.recoverable else " (framing lost)",
            )
            self._answer(item.response(), head=False)
            return
        self.requests += 1
        head = item.method == "HEAD"
        log.debug("%s: %s %s", self._label, item.method, item.target)
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            busy = error_response(503, "too many requests in progress", (("Retry-After", "1"),))
            self._answer(busy, head)
        elif isinstance(self._app, AppSource):
            self._answer(self._app.respond(item), head)
        else:
            self._pending.append(_Pending(head, request=item))
            self._start_forwarding()

    def _answer(self, response: HttpResponse, head: bool) -> None:
        wire = self._serialize(response, head)
        self._backlog += len(wire)
        if self._pending:  # an earlier request is still being answered: keep the order
            self._pending.append(_Pending(head, wire=wire))
        else:
            self._queue(wire)

    def _serialize(self, response: HttpResponse, head: bool) -> bytes:
        if self._wall_clock is not None and response.header("date") is None:
            date = ("Date", http_date(self._wall_clock()))
            response = replace(response, headers=(date, *response.headers))
        return response.serialize(head=head)

    def _start_forwarding(self) -> None:
        proxy = self._app
        assert isinstance(proxy, HttpProxy)
        for entry in self._pending:
            if self._in_flight >= PROXY_CONCURRENCY:
                return
            if entry.request is None:
                continue
            request, entry.request = entry.request, None
            entry.task = asyncio.get_running_loop().create_task(proxy.forward(request))
            entry.task.add_done_callback(partial(self._forwarded, entry))
            self._in_flight += 1

    def _forwarded(self, entry: _Pending, task: asyncio.Task[HttpResponse]) -> None:
        self._in_flight -= 1
        if task.cancelled():
            return
        error = task.exception()
        if self._closed:
            return
        if error is not None:
            log.error("%s: forwarding failed", self._label, exc_info=error)
            response = error_response(502, "forwarding failed")
        else:
            response = task.result()
        entry.task = None
        entry.wire = self._serialize(response, entry.head)
        self._backlog += len(entry.wire)
        self._flush()
        self._start_forwarding()

    # ------------------------------------------------------------------ sending

    def _flush(self) -> None:
        """Move answers that are next in order to the outbox, then send what the channel takes."""
        while self._pending and self._pending[0].wire is not None:
            wire = self._pending.popleft().wire
            assert wire is not None
            self._queue(wire)
        self._pump()

    def _queue(self, wire: bytes) -> None:
        size = self._message_size
        self._outbox.extend(wire[i : i + size] for i in range(0, len(wire), size))

    def _pump(self) -> None:
        while self._outbox and not self._closed:
            if self._channel.buffered_amount() > HIGH_WATER:
                if self._timer is None:
                    if self._clock is None:
                        self._clock = LoopClock()
                    self._timer = self._clock.call_later(RETRY_INTERVAL, self._retry)
                return
            piece = self._outbox.popleft()
            self._backlog -= len(piece)
            self._channel.send(piece)

    def _retry(self) -> None:
        self._timer = None
        self._pump()


# --------------------------------------------------------------------------- factory


class BootstrapServiceFactory:
    """Creates the :class:`BootstrapService` of each bootstrap channel (a ServiceFactory).

    Register it for subprotocol ``http``; call :meth:`aclose` at shutdown (it closes the
    proxy's connection pool, if any).
    """

    def __init__(
        self,
        app: AppSource | HttpProxy,
        *,
        max_request_size: int = DEFAULT_MAX_SIZE,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = time.time,
    ) -> None:
        self.app = app
        self.max_request_size = max_request_size
        self.clock = clock
        self.wall_clock = wall_clock

    def __call__(self, channel: ChannelContext) -> BootstrapService:
        return BootstrapService(
            channel,
            app=self.app,
            max_request_size=self.max_request_size,
            clock=self.clock,
            wall_clock=self.wall_clock,
        )

    async def aclose(self) -> None:
        if isinstance(self.app, HttpProxy):
            await self.app.aclose()


def bootstrap_service_factory(
    config: BootstrapConfig,
    *,
    app: AppSource | None = None,
    clock: Clock | None = None,
    wall_clock: Callable[[], float] | None = time.time,
) -> BootstrapServiceFactory:
    """The bootstrap service factory for ``config``.

    With ``replace_http_url`` set, requests are forwarded there. Otherwise files are served from
    ``app``, or, when None, from the folder the config names (``app_dir``, else the shipped
    application), read here: build this at start-up (or pass an ``app`` loaded with
    ``await asyncio.to_thread(AppSource.from_config, config)``). Raises AppSourceError if the
    folder cannot be served.
    """
    source: AppSource | HttpProxy
    if config.replace_http_url is not None:
        source = HttpProxy(
            config.replace_http_url,
            timeout=config.proxy_timeout,
            max_response_size=config.max_response_size,
        )
        log.info("bootstrap channels: forwarding requests to %s", source.base_url)
    else:
        source = app if app is not None else AppSource.from_config(config)
        log.info(
            "bootstrap channels: serving %d files (%d bytes) from %s",
            len(source.names),
            source.size,
            source.origin,
        )
    return BootstrapServiceFactory(
        source, max_request_size=config.max_request_size, clock=clock, wall_clock=wall_clock
    )
