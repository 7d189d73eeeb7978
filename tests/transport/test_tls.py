"""SIP over TLS (RFC 3261 26.2) and wss over real loopback sockets with a generated lab
certificate; what a TLS port does with plain TCP, untrusting clients and silent ones; the
connection limits of the stream transports; the settings and files TLS needs."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from avatar_mf.config import ConfigError, load_config
from avatar_mf.sip.message import Request
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable
from avatar_mf.transport.tcp import TcpTransport
from avatar_mf.transport.tls import client_context, generate_lab_certificate, server_context
from avatar_mf.transport.ws import WebSocketTransport

from .sinks import RecordingSink, eventually, options

pytestmark = pytest.mark.timeout(30)


class LabFiles:
    def __init__(self, folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> None:
        pair = generate_lab_certificate(hosts)
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = folder / "ca.pem"
        self.cert = folder / "cert.pem"
        self.key = folder / "key.pem"
        self.ca.write_bytes(pair.ca_pem)
        self.cert.write_bytes(pair.certificate_pem)
        self.key.write_bytes(pair.key_pem)

    def server(self) -> ssl.SSLContext:
        return server_context(self.cert, self.key)

    def client(self) -> ssl.SSLContext:
        return client_context(self.ca)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabFiles:
    return LabFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def make_stream() -> AsyncIterator[Callable[..., Any]]:
    made: list[TcpTransport] = []

    async def make(sink: RecordingSink, **options: Any) -> TcpTransport:
        settings: dict[str, Any] = {"max_message_size": 65535, "idle_timeout": 30.0}
        settings.update(options)
        transport = TcpTransport(sink, **settings)
        await transport.listen("127.0.0.1", 0)
        sink.answer = transport
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()
        await transport.wait_closed()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(options("tls"))
    await writer.drain()
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def _served(port: int, lab: LabFiles) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=lab.client(), server_hostname="localhost"
    )
    try:
        return await _ask(reader, writer)
    finally:
        writer.close()


async def test_sip_over_tls_is_answered_on_the_connection(
    make_stream: Callable[..., Any], lab: LabFiles
) -> None:
    sink = RecordingSink()
    tls: TcpTransport = await make_stream(sink, name="tls", server_ssl=lab.server())
    for name in ("localhost", "127.0.0.1"):  # both are in the certificate
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tls.local_port, ssl=lab.client(), server_hostname=name
        )
        answer = await _ask(reader, writer)
        assert answer.startswith(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS ")
        writer.close()
    [(first, peer), _] = sink.messages
    assert isinstance(first, Request) and first.method == "OPTIONS"
    assert peer.transport == "tls" and peer.reliable and peer.connection_id is not None


async def test_plain_tcp_on_the_tls_port_is_dropped_and_the_listener_goes_on(
    make_stream: Callable[..., Any], lab: LabFiles
) -> None:
    sink = RecordingSink()
    tls: TcpTransport = await make_stream(sink, name="tls", server_ssl=lab.server())
    reader, writer = await asyncio.open_connection("127.0.0.1", tls.local_port)
    writer.write(options("tcp"))
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        rest = b""
    assert not rest.startswith(b"SIP/2.0")  # a TLS alert at most, never a SIP answer
    writer.close()
    assert not sink.messages and tls.connection_count == 0
    assert (await _served(tls.local_port, lab)).startswith(b"SIP/2.0 200")


@pytest.mark.parametrize("client", ["system-trust-store", "wrong-name"])
async def test_a_client_refusing_the_certificate_fails_cleanly(
    make_stream: Callable[..., Any], lab: LabFiles, client: str
) -> None:
    sink = RecordingSink()
    tls: TcpTransport = await make_stream(sink, name="tls", server_ssl=lab.server())
    context = client_context() if client == "system-trust-store" else lab.client()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            "127.0.0.1",
            tls.local_port,
            ssl=context,
            server_hostname="localhost" if client == "system-trust-store" else "other.example",
        )
    assert (await _served(tls.local_port, lab)).startswith(b"SIP/2.0 200")
    assert len(sink.messages) == 1


async def test_a_handshake_that_never_comes_times_out(
    make_stream: Callable[..., Any], lab: LabFiles
) -> None:
    tls: TcpTransport = await make_stream(
        RecordingSink(), name="tls", server_ssl=lab.server(), ssl_handshake_timeout=0.3
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", tls.local_port)
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        pass
    writer.close()


async def test_stream_connection_limits(make_stream: Callable[..., Any]) -> None:
    limits = ConnectionTable(ConnectionLimits(max_connections=10, max_connections_per_source=1))
    sink = RecordingSink()
    tcp: TcpTransport = await make_stream(sink, table=limits)
    r1, w1 = await asyncio.open_connection("127.0.0.1", tcp.local_port)
    await eventually(lambda: limits.total == 1)
    r2, w2 = await asyncio.open_connection("127.0.0.1", tcp.local_port)
    try:
        assert await asyncio.wait_for(r2.read(), 5) == b""  # closed at once
    except ConnectionResetError:
        pass
    w2.close()
    assert limits.refused == {"source": 1}
    assert (await _ask(r1, w1)).startswith(b"SIP/2.0 200")  # the first one is still served
    w1.close()
    await eventually(lambda: limits.total == 0)
    r3, w3 = await asyncio.open_connection("127.0.0.1", tcp.local_port)
    assert (await _ask(r3, w3)).startswith(b"SIP/2.0 200")
    w3.close()
    await eventually(lambda: limits.total == 0)


async def test_wss_over_the_same_certificate(lab: LabFiles) -> None:
    sink = RecordingSink()
    wss = WebSocketTransport(
        sink,
        table=ConnectionTable(ConnectionLimits()),
        max_message_size=65535,
        idle_timeout=30,
        ping_interval=0,
        ssl_context=lab.server(),
    )
    sink.answer = wss
    await wss.listen("127.0.0.1", 0)
    try:
        assert wss.name == "wss"
        url = f"wss://localhost:{wss.local_port}/"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, protocols=("sip",), ssl=lab.client()) as ws:
                await ws.send_str(options("wss").decode())
                answer = await ws.receive(timeout=5)
                assert answer.data.startswith("SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS ")
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.ws_connect(url, protocols=("sip",), ssl=client_context())
        assert sink.messages[0][1].transport == "wss"
    finally:
        await wss.wait_closed()


def test_lab_certificate(lab: LabFiles) -> None:
    cert = x509.load_pem_x509_certificate(lab.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(lab.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=365) <= lifetime <= datetime.timedelta(days=366)
    with pytest.raises(ValueError):
        generate_lab_certificate(())


def test_unreadable_or_mismatched_files_are_refused(lab: LabFiles, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        server_context(tmp_path / "missing.pem", lab.key)
    other = LabFiles(tmp_path / "other")
    with pytest.raises(ssl.SSLError):
        server_context(lab.cert, other.key)


@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_tls_and_wss_need_a_certificate_and_key(transport: str, lab: LabFiles) -> None:
    env = {"AVATAR_MF_SIP__TRANSPORTS": f"udp,{transport}"}
    with pytest.raises(ConfigError) as problems:
        load_config(None, env=env)
    text = str(problems.value)
    assert "sip.tls_certificate" in text and "sip.tls_private_key" in text
    assert f"must be set when sip.transports lists {transport}" in text
    env["AVATAR_MF_SIP__TLS_CERTIFICATE"] = str(lab.cert)
    env["AVATAR_MF_SIP__TLS_PRIVATE_KEY"] = str(lab.key)
    sip = load_config(None, env=env).sip
    assert sip.tls_certificate == lab.cert and sip.transports == ("udp", transport)
    assert (sip.tls_port, sip.ws_port, sip.wss_port) == (5061, 5066, 7443)
