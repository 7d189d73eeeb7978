"""The UE side of a bootstrap data channel: HTTP/1.1 requests, responses put back together.

TS 26.114 clause 6.2.10: a UE downloads the data channel application (``GET /`` first, then
its assets) over the bootstrap channels (subprotocol ``http``, stream ids 0 and 10 for the
local network). The MF splits each response into messages no larger than the UE's
``a=max-message-size``; the UE reassembles it by its ``Content-Length`` (RFC 9112 section 6.3:
responses without one, or chunked, are not produced by the MF and not read here).

:class:`ResponseReader` is sans-IO (bytes in, :class:`HttpReply` out);
:class:`BootstrapClient` drives it over a :class:`~avatar_mf.ue.call.UeCall` stream.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avatar_mf.ue.call import UeCall

__all__ = ["BootstrapClient", "HttpReply", "ResponseError", "ResponseReader"]

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
#: Largest response head accepted (status line and fields).
MAX_HEAD = 65536
#: Largest response body accepted.
MAX_BODY = 64 * 1024 * 1024


class ResponseError(ValueError):
    """The bytes on the channel are not an HTTP/1.1 response this reader can frame."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """One complete HTTP response."""

    status: int
    reason: str
    #: Field names lower-cased, in order; values as received (latin-1).
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)
    #: The whole response as received (head and body).
    raw: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """The first field called ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ("" if absent)."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()


class ResponseReader:
    """Reassembles responses from a bootstrap channel's messages (in order); a message may
    end one response and start the next."""

    def __init__(self, *, head_request: Callable[[], bool] | None = None) -> None:
        self._buffer = bytearray()
        self._head_request = head_request or (lambda: False)

    def feed(self, data: str | bytes) -> list[HttpReply]:
        """Add one message; returns the responses it completed. Raises
        :class:`ResponseError` when the stream cannot be framed (the reader is then reset)."""
        self._buffer += data.encode("utf-8") if isinstance(data, str) else data
        out: list[HttpReply] = []
        while True:
            try:
                reply = self._next()
            except ResponseError:
                self._buffer.clear()
                raise
            if reply is None:
                return out
            out.append(reply)

    def _next(self) -> HttpReply | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise ResponseError(f"no end of the response head in {len(buffer)} bytes")
            return None
        head = bytes(buffer[:end])
        lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ResponseError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(match.group(3))
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ResponseError(f"bad header field line {line[:80]!r}")
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        fields = dict(headers)
        if "transfer-encoding" in fields:
            raise ResponseError("Transfer-Encoding is not used on bootstrap channels")
        no_body = self._head_request() or status in (204, 304) or 100 <= status < 200
        length = 0
        if not no_body:
            text = fields.get("content-length")
            if text is None or not text.isdigit():
                raise ResponseError(f"response without a usable Content-Length: {text!r}")
            length = int(text)
            if length > MAX_BODY:
                raise ResponseError(f"Content-Length {length} is over {MAX_BODY}")
        total = end + 4 + length
        if len(buffer) < total:
            return None
        raw = bytes(buffer[:total])
        del buffer[:total]
        return HttpReply(
            status=status,
            reason=(match.group(4) or b"").decode("latin-1"),
            headers=tuple(headers),
            body=raw[end + 4 :],
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class _Request:
    path: str
    method: str
    reply: asyncio.Future[HttpReply]


class BootstrapClient:
    """HTTP GETs over one bootstrap channel of a call; responses are matched to requests in
    order (HTTP/1.1 pipelining on one "connection": the channel).

    ``on_reply(stream_id, path, reply, at)`` sees every response (the recorder's hook).
    """

    def __init__(
        self,
        call: UeCall,
        stream_id: int = 0,
        *,
        host: str = "mf.invalid",
        on_reply: Callable[[int, str, HttpReply, float], None] | None = None,
    ) -> None:
        self.call = call
        self.stream_id = stream_id
        self.host = host
        self.on_reply = on_reply
        self.replies: list[tuple[str, HttpReply]] = []
        self.problems: list[str] = []
        self._pending: collections.deque[_Request] = collections.deque()
        self._reader = ResponseReader(
            head_request=lambda: bool(self._pending) and self._pending[0].method == "HEAD"
        )
        call.set_handler(stream_id, self._on_message)

    def close(self) -> None:
        """Stop handling the stream; pending requests fail."""
        self.call.set_handler(self.stream_id, None)
        while self._pending:
            request = self._pending.popleft()
            if not request.reply.done():
                request.reply.set_exception(ConnectionError("bootstrap client closed"))

    async def get(
        self,
        path: str = "/",
        timeout: float = 5.0,  # noqa: ASYNC109 -- every wait of the test UE is bounded by its own argument
        *,
        method: str = "GET",
    ) -> HttpReply:
        """Send ``method path`` and wait for its response."""
        future: asyncio.Future[HttpReply] = asyncio.get_running_loop().create_future()
        request = _Request(path, method, future)
        self._pending.append(request)
        self.call.send(
            self.stream_id, f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        )
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise TimeoutError(f"no response to {method} {path} within {timeout} s") from None

    def _on_message(self, data: str | bytes, at: float) -> None:
        try:
            replies = self._reader.feed(data)
        except ResponseError as exc:
            self.problems.append(f"stream {self.stream_id}: {exc}")
            while self._pending:
                request = self._pending.popleft()
                if not request.reply.done():
                    request.reply.set_exception(exc)
            return
        for reply in replies:
            if not self._pending:
                self.problems.append(f"stream {self.stream_id}: a response nobody asked for")
                continue
            request = self._pending.popleft()
            self.replies.append((request.path, reply))
            if self.on_reply is not None:
                self.on_reply(self.stream_id, request.path, reply, at)
            if not request.reply.done():
                request.reply.set_result(reply)
