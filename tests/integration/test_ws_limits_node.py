"""The ws listener of a real MF process against one abusive peer (issue 9), measured as
test_sip_limits.py measures TCP: open file descriptors (``/proc/<pid>/fd``), what the admin
listener and UDP OPTIONS still answer, and what the node logs. Silent sockets and a trickled
handshake, on loopback, bounded in count and time."""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from avatar_mf.testing.process import MfProcess, free_port

HOST = "127.0.0.1"

pytestmark = pytest.mark.timeout(120)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def start_ws_mf(tmp_path: Path) -> Iterator[object]:
    nodes: list[tuple[MfProcess, int]] = []

    def start(settings: Mapping[str, str], fd_limit: int | None = None) -> tuple[MfProcess, int]:
        ws_port = free_port()
        merged = {"SIP__TRANSPORTS": "udp,tcp,ws", "SIP__WS_PORT": str(ws_port), **settings}
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, hard))  # inherited at exec
        try:
            node = MfProcess.start(tmp_path / f"mf{len(nodes)}", settings=merged)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        nodes.append((node, ws_port))
        return node, ws_port

    yield start
    for node, _port in nodes:
        text = node.log_text()
        assert node.stop() == 0, text[-3000:]
        assert "Traceback" not in text, text[-3000:]


def udp_options_status(mf: MfProcess) -> int:
    request = (
        f"OPTIONS sip:mf@{HOST}:{mf.sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:9;branch=z9hG4bK-ws-{time.monotonic_ns()};rport\r\n"
        f"From: <sip:ue@{HOST}>;tag=a\r\nTo: <sip:mf@{HOST}>\r\n"
        f"Call-ID: ws-{time.monotonic_ns()}@{HOST}\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(3.0)
        s.sendto(request, (HOST, mf.sip_port))
        return int(s.recv(65535).split(b" ", 2)[1])


def silent_connection(port: int, local: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((local, 0))
    s.settimeout(3.0)
    s.connect((HOST, port))
    return s


def test_silent_websocket_sockets_leave_the_fd_reserve_to_the_admin_listener(
    start_ws_mf,  # type: ignore[no-untyped-def]
) -> None:
    """Before, the ws listener counted a connection only once its handshake arrived: 300
    sockets that never send one took every descriptor of a node limited to 256."""
    mf, ws_port = start_ws_mf(
        {"SIP__FD_RESERVE": "96", "SIP__TCP_MAX_CONNECTIONS_PER_SOURCE": "0"}, fd_limit=256
    )
    pid = mf.proc.pid
    conns = []
    try:
        for i in range(300):  # more than the node's whole descriptor limit
            conns.append(silent_connection(ws_port, f"127.0.2.{i % 200 + 1}"))
        time.sleep(0.5)
        assert open_fds(pid) <= 256 - 96 + 1, open_fds(pid)
        for _ in range(5):
            assert mf.http_get("/stats", timeout=3)[0] == 200
        stats = mf.stats()
        assert stats["limits"]["tcp_refused_fds"] > 0
        assert udp_options_status(mf) == 200  # half the reserve is left for calls
    finally:
        for c in conns:
            c.close()
    assert "ws: refusing connections: fewer than 96 file descriptors free" in mf.log_text()


def test_a_trickled_websocket_handshake_is_closed_at_the_message_deadline(
    start_ws_mf,  # type: ignore[no-untyped-def]
) -> None:
    mf, ws_port = start_ws_mf({"SIP__TCP_MESSAGE_TIMEOUT": "1"})
    handshake = (
        f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: sip\r\n\r\n"
    ).encode()
    started = time.monotonic()
    closed = False
    with silent_connection(ws_port, HOST) as s:
        for byte in handshake[:60]:  # one byte every 0.1 s: 6 s if never closed
            try:
                s.sendall(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            s.settimeout(0.1)
            try:
                if not s.recv(100):
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
    elapsed = time.monotonic() - started
    assert closed and elapsed < 3.0, elapsed
    assert "no WebSocket handshake within" in mf.log_text()
    assert mf.stats()["limits"]["tcp_message_timeouts"] == 1
