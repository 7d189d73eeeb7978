"""SIP over TLS, WebSocket and secure WebSocket against a real MF process, on loopback only.

One node listens on udp, tcp, tls, ws and wss with a certificate made by ``avatar-mf tls
generate-cert`` (here its function). The peers are real: the test UE (SIP over tls, ws and
wss, data channels with ICE and DTLS), a browser-like SIP WebSocket client written here with
JsSIP's habits (``.invalid`` Via and Contact hosts, Contact ``transport=ws`` over wss too, no
Content-Length), and SIPp. Debian's SIPp is built without TLS (``sipp -v`` lists no TLS and
``-t l1`` exits with "you must compile SIPp with OpenSSL"): its TLS call goes through a small
relay that takes SIPp's TCP connection and carries it over a verified TLS connection to the
MF's TLS port; ``-t l1`` itself runs where SIPp has TLS.

Each test checks that the node logged no error, and released everything after its calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.sip.build import make_response, new_branch, new_tag
from avatar_mf.sip.message import Request, Response, serialize
from avatar_mf.sip.parser import parse_message
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.transport.tls import client_context, generate_lab_certificate
from avatar_mf.ue import DEFAULT_STREAMS, UeCall
from avatar_mf.ue.sip_client import SipTransportName

from .conftest import FIXTURE_SDP, _log_problems, assert_calls_ok, assert_idle, stats_delta

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.1"
STEP = 5.0
MF_SETUP_TIMEOUT = 1.0
ORIGIN = "https://lab.example:8443"
ECHO = DcMap(1010, label="diagnostic", subprotocol="x-avatar-mf-echo")
SECURE = ("tls", "ws", "wss")


@dataclass(frozen=True)
class SecureNode:
    mf: MfProcess
    ports: dict[str, int]
    ca: Path
    cert: Path
    key: Path

    def client(self) -> ssl.SSLContext:
        """A client context trusting the lab CA: what a UE configured for the lab has."""
        return client_context(self.ca)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNode]:
    folder = tmp_path_factory.mktemp("secure-mf")
    pair = generate_lab_certificate(("localhost", HOST))
    ca, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca.write_bytes(pair.ca_pem)
    cert.write_bytes(pair.certificate_pem)
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(SECURE):
        ports = {name: free_port() for name in SECURE}
    settings = {
        "SIP__T1": "0.005",
        "SIP__T4": "0.05",
        "MEDIA__SETUP_TIMEOUT": str(MF_SETUP_TIMEOUT),
        "LOG__LEVEL": "INFO",
        "SIP__TRANSPORTS": "udp,tcp,tls,ws,wss",
        "SIP__TLS_PORT": str(ports["tls"]),
        "SIP__WS_PORT": str(ports["ws"]),
        "SIP__WSS_PORT": str(ports["wss"]),
        "SIP__TLS_CERTIFICATE": str(cert),
        "SIP__TLS_PRIVATE_KEY": str(key),
        "SIP__WS_ORIGINS": ORIGIN,
    }
    mf = MfProcess.start(folder / "node", settings=settings)
    try:
        yield SecureNode(mf, ports, ca, cert, key)
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]


@pytest.fixture
def mf(node: SecureNode) -> Iterator[SecureNode]:
    """The node, checked after the test: alive, and no ERROR logged meanwhile."""
    start = len(node.mf.log_text())
    yield node
    assert node.mf.proc.poll() is None, f"the MF died:\n{node.mf.log_text()[-3000:]}"
    problems = _log_problems(node.mf.log_text()[start:])
    assert not problems, "the MF logged errors:\n" + "\n".join(problems[:20])


async def released(node: SecureNode) -> dict[str, Any]:
    return await asyncio.to_thread(assert_idle, node.mf, STEP)


def dial(node: SecureNode, transport: str, **options: Any) -> UeCall:
    port = node.ports[transport]
    return UeCall.dial(
        f"sip:avatar@{HOST}:{port};transport={transport}",
        HOST,
        port,
        transport=cast(SipTransportName, transport),
        tls=node.client(),
        **options,
    )


# --------------------------------------------------------------------------- the test UE


@pytest.mark.parametrize("transport", SECURE)
async def test_ue_call_with_data_channels(mf: SecureNode, transport: str) -> None:
    """INVITE over tls / ws / wss, data channels up (ICE, DTLS, SCTP), echo, BYE, 200."""
    before = await asyncio.to_thread(mf.mf.stats)
    async with dial(mf, transport, streams=(*DEFAULT_STREAMS, ECHO)) as call:
        assert call.final_status == 200
        await call.wait_channels_open(STEP)
        call.send(ECHO.stream_id, f"over {transport}")
        assert await call.receive(ECHO.stream_id, STEP) == f"over {transport}"
    assert call.errors == [] and call.ok
    assert call.ended_by == "ue" and call.bye_status == 200
    delta = stats_delta(before, await released(mf))
    assert delta["calls_answered"] == delta["calls_ended"] == 1


@pytest.mark.parametrize("transport", SECURE)
async def test_mf_bye_comes_back_on_the_connection(mf: SecureNode, transport: str) -> None:
    """A UE that never starts DTLS: the MF's BYE reaches it on its tls / ws / wss connection
    (RFC 3261 18.2.2 reuse; RFC 7118 section 5 for WebSocket), and its 200 gets back."""
    before = await asyncio.to_thread(mf.mf.stats)
    async with dial(mf, transport, ice=False, start_media=False) as call:
        reason = await call.wait_ended(MF_SETUP_TIMEOUT + STEP)
        assert "setup timeout" in reason
    assert call.ended_by == "mf"
    delta = stats_delta(before, await released(mf))
    assert delta["tx_request_BYE"] == 1 and delta["rx_response_200"] == 1


# --------------------------------------------------------------------------- a browser


class BrowserSip:
    """A SIP WebSocket client with JsSIP's habits, for one call (RFC 7118)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, transport: str) -> None:
        self.ws = ws
        self.via_transport = transport.upper()
        self.host = "df7jal23ls0d.invalid"
        self.contact = f"<sip:k3l5q9a2@{self.host};transport=ws;ob>"
        self.call_id = f"{new_tag()}@browser"
        self.tag = new_tag()

    def request(self, method: str, uri: str, cseq: int, *, to: str, body: bytes = b"") -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.via_transport} {self.host};branch={new_branch()}",
            "Max-Forwards: 69",
            f"To: {to}",
            f"From: <sip:alice@lab.example>;tag={self.tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact}",
            "User-Agent: JsSIP-like test client",
        ]
        if body:
            lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}"]
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body

    async def receive(self) -> Request | Response:
        msg = await self.ws.receive(timeout=STEP)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        return parse_message(msg.data.encode(), datagram=True)

    async def send(self, data: bytes) -> None:
        await self.ws.send_str(data.decode())


@pytest.mark.parametrize("transport", ["ws", "wss"])
async def test_browser_like_client_gets_the_mf_bye_on_its_websocket(
    mf: SecureNode, transport: str
) -> None:
    """INVITE with a .invalid Contact (transport=ws even over wss), 200, ACK; the MF ends the
    call (no DTLS) with a BYE on the same WebSocket connection, Via WS/WSS and its own port."""
    port = mf.ports[transport]
    before = await asyncio.to_thread(mf.mf.stats)
    ssl_context: ssl.SSLContext | bool = mf.client() if transport == "wss" else True
    url = f"{transport}://localhost:{port}/sip/any/path"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=("sip",), origin=ORIGIN, ssl=ssl_context) as ws,
    ):
        assert ws.protocol == "sip"
        browser = BrowserSip(ws, transport)
        target = f"sip:avatar@{HOST}:{port}"
        await browser.send(
            browser.request("INVITE", target, 1, to=f"<{target}>", body=FIXTURE_SDP.read_bytes())
        )
        ok = await browser.receive()
        while isinstance(ok, Response) and ok.status < 200:
            ok = await browser.receive()
        assert isinstance(ok, Response) and ok.status == 200
        assert ok.headers.get("Contact") == f"<sip:mf@{HOST}:{port};transport={transport}>"
        to = ok.headers.get("To") or ""
        await browser.send(browser.request("ACK", f"sip:mf@{HOST}:{port}", 1, to=to))
        bye = await browser.receive()
        assert isinstance(bye, Request) and bye.method == "BYE"
        assert bye.uri == f"sip:k3l5q9a2@{browser.host};transport=ws;ob"
        assert (bye.headers.get("Via") or "").startswith(
            f"SIP/2.0/{transport.upper()} {HOST}:{port};branch="
        )
        await browser.send(serialize(make_response(bye, 200)))
    delta = stats_delta(before, await released(mf))
    assert delta["tx_request_BYE"] == 1 and delta["rx_response_200"] == 1


async def test_websocket_handshakes_refused_by_the_node(mf: SecureNode) -> None:
    """No ``sip`` subprotocol: 400; a page from another origin: 403 (sip.ws_origins); the
    node then serves a good handshake."""
    url = f"ws://{HOST}:{mf.ports['ws']}/"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_sip:
            await session.ws_connect(url, protocols=("chat",), origin=ORIGIN)
        assert no_sip.value.status == 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as elsewhere:
            await session.ws_connect(url, protocols=("sip",), origin="https://elsewhere.example")
        assert elsewhere.value.status == 403
        async with session.ws_connect(url, protocols=("sip",), origin=ORIGIN) as ws:
            await ws.send_str("\r\n\r\n")
            assert (await ws.receive(timeout=STEP)).data == "\r\n"


# --------------------------------------------------------------------------- the TLS port


async def test_tls_port_refuses_plain_tcp_and_untrusting_clients_then_serves(
    mf: SecureNode,
) -> None:
    port = mf.ports["tls"]
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"OPTIONS sip:mf@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    try:
        rest = await asyncio.wait_for(reader.read(), STEP)
    except ConnectionResetError:
        rest = b""
    assert not rest.startswith(b"SIP/2.0")
    writer.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(HOST, port, ssl=client_context(), server_hostname=HOST)
    async with dial(mf, "tls", ice=False, streams=(*DEFAULT_STREAMS, ECHO)) as call:
        await call.wait_channels_open(STEP)
    assert call.ok and call.errors == []
    await released(mf)


def test_node_with_an_unusable_certificate_does_not_start(tmp_path: Path, node: SecureNode) -> None:
    """A key that does not match the certificate: the node says so and exits 1."""
    other = generate_lab_certificate(("localhost",))
    (tmp_path / "other-key.pem").write_bytes(other.key_pem)
    settings = {
        "SIP__TRANSPORTS": "udp,tls",
        "SIP__TLS_PORT": str(free_port()),
        "SIP__TLS_CERTIFICATE": str(node.cert),
        "SIP__TLS_PRIVATE_KEY": str(tmp_path / "other-key.pem"),
        "LOG__FORMAT": "text",
    }
    with pytest.raises(RuntimeError) as failed:
        MfProcess.start(tmp_path / "bad", settings=settings, timeout=20)
    text = str(failed.value)
    assert "MF exited with 1" in text
    assert "cannot start" in text and f"TLS certificate {node.cert}" in text
    assert "Traceback" not in text


# --------------------------------------------------------------------------- SIPp


class TlsRelay:
    """Plain TCP in, verified TLS out: carries SIPp's TCP connection to the MF's TLS port."""

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self._target = target_port
        self._context = context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls_reader, tls_writer = await asyncio.open_connection(
            HOST, self._target, ssl=self._context, server_hostname="localhost"
        )
        self.connections += 1
        await asyncio.gather(self._pipe(reader, tls_writer), self._pipe(tls_reader, writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def __enter__(self) -> TlsRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(STEP)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(STEP)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STEP)
        self._loop.close()


def sipp_has_tls() -> bool:
    sipp = shutil.which("sipp")
    if sipp is None:
        return False
    version = subprocess.run([sipp, "-v"], capture_output=True, text=True, check=False)
    return "-TLS" in version.stdout + version.stderr


def test_sipp_calls_over_tls_through_a_relay(mf: SecureNode, run_sipp: Callable[..., Any]) -> None:
    """SIPp's basic call, twice, over one TCP connection that the relay carries over TLS."""
    before = mf.mf.stats()
    with TlsRelay(mf.ports["tls"], mf.client()) as relay:
        target = dataclasses.replace(mf.mf, sip_port=relay.port)
        result = run_sipp("basic_call.xml", target, transport="t1", calls=2, call_length_ms=100)
        assert relay.connections == 1
    assert_calls_ok(result, 2)
    delta = stats_delta(before, assert_idle(mf.mf))
    assert delta["calls_answered"] == delta["calls_ended"] == 2
    assert delta["rx_request_BYE"] == 2


@pytest.mark.skipif(not sipp_has_tls(), reason="this SIPp is built without TLS (sipp -v)")
def test_sipp_calls_over_tls_natively(mf: SecureNode, run_sipp: Callable[..., Any]) -> None:
    before = mf.mf.stats()
    target = dataclasses.replace(mf.mf, sip_port=mf.ports["tls"])
    result = run_sipp(
        "basic_call.xml",
        target,
        transport="l1",
        calls=2,
        call_length_ms=100,
        extra=["-tls_cert", str(mf.cert), "-tls_key", str(mf.key)],
    )
    assert_calls_ok(result, 2)
    delta = stats_delta(before, assert_idle(mf.mf))
    assert delta["calls_answered"] == delta["calls_ended"] == 2
