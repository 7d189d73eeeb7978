"""Errors answered in-protocol by a real MF process, sent from plain sockets (no SIPp: these
messages are broken on purpose or need exact control of retransmissions).

Every message names only loopback addresses (Via, Contact, URIs), since the MF routes its
responses by them. After each error the MF must still answer OPTIONS 200 and hold no call.

RFC 3261: 8.2.6.2 / 21.4.1 (400 for a malformed request that can still be answered), 21.5.6
(505), 21.4.19 / 18.1.1 (513), 12.2.2 (481 for a request naming no dialog), 8.2.1 (405 with
Allow for a known method not handled, 501 for an unknown method), 17.2.1 and RFC 6026 7.1 (an
INVITE retransmitted after the 2xx is absorbed and makes no second call).
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from dataclasses import dataclass

import pytest

from avatar_mf.testing.process import MfProcess

from .conftest import FIXTURE_SDP, HOST, assert_idle, stats_delta

MAX_MESSAGE_SIZE = 2000
# T1 5 ms: the transactions these requests leave behind (Timer J, 64*T1) end in 0.32 s, so
# the next test finds the node idle at once. Tests that make calls use the default T1.
pytestmark = pytest.mark.mf_settings(
    {"SIP__MAX_MESSAGE_SIZE": str(MAX_MESSAGE_SIZE), "SIP__T1": "0.005", "SIP__T4": "0.05"}
)

TRANSPORTS = ["udp", "tcp"]
WAIT = 3.0
"""Seconds to wait for any response (they take milliseconds)."""


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
    assert version == "SIP/2.0", lines[0]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Reply(int(status), reason, headers, body)


class SipSocket:
    """A loopback SIP peer over UDP or TCP that sends hand-written messages."""

    def __init__(self, transport: str, mf: MfProcess, host: str = HOST) -> None:
        self.transport = transport
        self.mf = mf
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        if transport == "tcp":
            self.sock.settimeout(WAIT)
            self.sock.connect((HOST, mf.sip_port))
        self._buffer = b""
        self.closed = False

    def __enter__(self) -> SipSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        *,
        start_line: str | None = None,
        call_id: str | None = None,
        branch: str | None = None,
        cseq: int = 1,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> bytes:
        target = f"sip:avatar@{HOST}:{self.mf.sip_port}"
        to = f"<{target}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            start_line if start_line is not None else f"{method} {target} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {self.host}:{self.port}"
            f";branch={branch or 'z9hG4bK-' + uuid.uuid4().hex};rport",
            f"From: <sip:ue1@{self.host}:{self.port}>;tag={uuid.uuid4().hex[:8]}",
            f"To: {to}",
            f"Call-ID: {call_id or uuid.uuid4().hex}@{HOST}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:ue1@{self.host}:{self.port};transport={self.transport}>",
            "Max-Forwards: 70",
            *(f"{name}: {value}" for name, value in headers),
            f"Content-Length: {len(body)}",
        ]
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body

    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, (HOST, self.mf.sip_port))
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float = WAIT) -> Reply | None:
        """The next response, or None after ``timeout`` (or when the MF closed TCP)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            if self.transport == "udp":
                try:
                    data = self.sock.recv(65535)
                except TimeoutError:
                    return None
                return parse_reply(data)
            message = self._framed()
            if message is not None:
                return parse_reply(message)
            try:
                chunk = self.sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self._buffer += chunk

    def _framed(self) -> bytes | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        length = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self._buffer[:end])
        size = end + 4 + (int(length.group(1)) if length else 0)
        if len(self._buffer) < size:
            return None
        message, self._buffer = self._buffer[:size], self._buffer[size:]
        return message

    def receive_raw(self, timeout: float) -> bytes | None:
        """The next datagram (UDP only), whatever it is, or None after ``timeout``."""
        assert self.transport == "udp"
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            return None

    def final(self, timeout: float = WAIT) -> Reply:
        """The next final (non-1xx) response."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.receive(deadline - time.monotonic())
            assert reply is not None, "no final response"
            if reply.status >= 200:
                return reply


def assert_alive(mf: MfProcess, transport: str) -> None:
    """The MF still answers OPTIONS 200 (from a new socket) and holds no call."""
    assert mf.proc.poll() is None, mf.log_text()[-3000:]
    with SipSocket(transport, mf) as peer:
        peer.send(peer.request("OPTIONS"))
        reply = peer.final()
    assert reply.status == 200, reply
    held = mf.stats()["held"]
    assert held["dialogs"] == held["pending_invites"] == held["call_sessions"] == 0, held


def _via_branch(reply: Reply) -> str:
    match = re.search(r";branch=([^;]+)", reply.header("Via") or "")
    return match.group(1) if match else ""


def in_dialog(peer: SipSocket, invite: bytes, ok: Reply, method: str, cseq: int) -> bytes:
    """``method`` in the dialog set up by ``invite`` and its 200 ``ok`` (RFC 3261 12.2.1.1):
    to the 200's Contact, with the INVITE's From and Call-ID and the 200's To (with tag)."""
    text = invite.decode("latin-1")
    from_line = re.search(r"(?m)^From: [^\r]*", text)
    call_line = re.search(r"(?m)^Call-ID: [^\r]*", text)
    contact = re.search(r"<([^>]+)>", ok.header("Contact") or "")
    assert from_line and call_line and contact, ok
    lines = [
        f"{method} {contact.group(1)} SIP/2.0",
        f"Via: SIP/2.0/{peer.transport.upper()} {peer.host}:{peer.port}"
        f";branch=z9hG4bK-{uuid.uuid4().hex};rport",
        from_line.group(0),
        f"To: {ok.header('To')}",
        call_line.group(0),
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n"


BROKEN_START_LINES = [
    pytest.param("\x01\x02garbage start line", 400, id="garbage-method"),
    pytest.param("OPTIONS {uri} SIP/3.0", 505, id="sip-3.0"),
    pytest.param("OPTIONS  {uri} SIP/2.0", 400, id="two-spaces"),
    pytest.param("OPTIONS {uri}", 400, id="no-version"),
    pytest.param("OPTIONS {uri} SIP/2.0 trailing", 400, id="extra-token"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("start_line", "status"), BROKEN_START_LINES)
def test_broken_start_line_is_answered(
    mf: MfProcess, transport: str, start_line: str, status: int
) -> None:
    """Valid Via/From/To/Call-ID/CSeq, broken Request-Line: answered statelessly (400, or 505
    for another SIP version) with the request's Via branch, Call-ID and CSeq."""
    with SipSocket(transport, mf) as peer:
        line = start_line.format(uri=f"sip:avatar@{HOST}:{mf.sip_port}")
        branch = "z9hG4bK-" + uuid.uuid4().hex
        peer.send(peer.request("OPTIONS", start_line=line, branch=branch, call_id="broken"))
        reply = peer.final()
    assert reply.status == status, reply
    assert _via_branch(reply) == branch
    assert reply.header("Call-ID") == f"broken@{HOST}"
    assert reply.header("CSeq") == "1 OPTIONS"
    assert_alive(mf, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_without_headers_is_dropped(mf: MfProcess, transport: str) -> None:
    """Bytes that are not SIP at all (nothing to answer to): no response, no harm."""
    before = mf.stats()
    with SipSocket(transport, mf) as peer:
        peer.send(b"\x00\xff\xfe\x16\x03\x01 not sip at all\r\n\r\n")
        assert peer.receive(timeout=0.3) is None
    assert stats_delta(before, mf.stats())["bad_message"] == 1
    assert_alive(mf, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_oversized_message_gets_513(mf: MfProcess, transport: str) -> None:
    """A request larger than sip.max_message_size: 513 Message Too Large (RFC 3261 21.4.19);
    over TCP the connection may then be closed (framing is lost), the MF stays up."""
    with SipSocket(transport, mf) as peer:
        body = b"x" * (MAX_MESSAGE_SIZE + 1000)
        peer.send(peer.request("OPTIONS", headers=(("Content-Type", "text/plain"),), body=body))
        reply = peer.final()
    assert reply.status == 513, reply
    assert_alive(mf, transport)


@pytest.mark.mf_settings({"SIP__TRUSTED_PEERS": '["127.0.0.2/32"]'})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_untrusted_peer_gets_403(mf: MfProcess, transport: str) -> None:
    """sip.trusted_peers names 127.0.0.2 only: requests from 127.0.0.1 get 403 and make no
    call; the trusted 127.0.0.2 still gets 200."""
    before = mf.stats()
    with SipSocket(transport, mf) as peer:
        peer.send(peer.request("OPTIONS"))
        assert peer.final().status == 403
        offer = FIXTURE_SDP.read_bytes()
        peer.send(
            peer.request("INVITE", headers=(("Content-Type", "application/sdp"),), body=offer)
        )
        assert peer.final().status == 403
    with SipSocket(transport, mf, host="127.0.0.2") as trusted:
        trusted.send(trusted.request("OPTIONS"))
        assert trusted.final().status == 200
    delta = stats_delta(before, mf.stats())
    assert delta["untrusted"] == 2
    assert delta["calls_started"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("method", "to_tag", "status"),
    [
        pytest.param("BYE", "no-such-dialog", 481, id="bye-unknown-dialog-481"),
        pytest.param("UPDATE", "no-such-dialog", 481, id="update-unknown-dialog-481"),
        pytest.param("FOOBAR", None, 501, id="unknown-method-501"),
        pytest.param("MESSAGE", None, 405, id="message-405"),
        pytest.param("SUBSCRIBE", None, 405, id="subscribe-405"),
    ],
)
def test_unhandled_request_is_answered(
    mf: MfProcess, transport: str, method: str, to_tag: str | None, status: int
) -> None:
    with SipSocket(transport, mf) as peer:
        peer.send(peer.request(method, to_tag=to_tag))
        reply = peer.final()
    assert reply.status == status, reply
    assert reply.header("CSeq") == f"1 {method}"
    if status == 405:  # RFC 3261 21.4.6: a 405 MUST carry Allow
        allow = {m.strip() for m in (reply.header("Allow") or "").split(",")}
        assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE"} <= allow, reply
        assert method not in allow
    assert_alive(mf, transport)


@pytest.mark.mf_settings({"SIP__T1": "0.025", "SIP__T4": "0.5"})
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invite_retransmitted_after_200(mf: MfProcess, transport: str) -> None:
    """The INVITE repeated (same branch) after its 200: the transaction, in the RFC 6026
    Accepted state, keeps it from the TU (one call) and answers it with the cached 200, same To
    tag (a documented choice of sip/transaction.py: RFC 6026 7.1 only says "absorbed")."""
    before = mf.stats()
    with SipSocket(transport, mf) as peer:
        branch = "z9hG4bK-" + uuid.uuid4().hex
        invite = peer.request(
            "INVITE",
            branch=branch,
            headers=(("Content-Type", "application/sdp"),),
            body=FIXTURE_SDP.read_bytes(),
        )
        peer.send(invite)
        ok = peer.final()
        assert ok.status == 200, ok
        peer.send(invite)
        again = peer.receive()
        assert again is not None and again.status == 200, again
        assert again.header("To") == ok.header("To")
        peer.send(in_dialog(peer, invite, ok, "ACK", 1))
        peer.send(in_dialog(peer, invite, ok, "BYE", 2))
        bye_ok = peer.final()
        while bye_ok.header("CSeq") != "2 BYE":  # late 2xx retransmissions of the INVITE
            bye_ok = peer.final()
        assert bye_ok.status == 200, bye_ok
    assert_alive(mf, transport)
    delta = stats_delta(before, assert_idle(mf))
    assert delta["rx_request_INVITE"] == 2
    assert delta["calls_started"] == delta["calls_answered"] == delta["calls_ended"] == 1
    assert delta["tx_request_BYE"] == 0


def dtls_client_hello() -> bytes:
    """A real DTLS ClientHello, as any DTLS client (another UE, a scanner) would send it."""
    from OpenSSL import SSL

    connection = SSL.Connection(SSL.Context(SSL.DTLS_METHOD), None)
    connection.set_connect_state()
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass
    hello: bytes = connection.bio_read(65535)
    return hello


@pytest.mark.mf_settings({"SIP__T1": "0.025", "SIP__T4": "0.5"})
def test_stray_dtls_client_hello_does_not_end_the_call(mf: MfProcess) -> None:
    """A call whose offer declares the UE's DTLS address 127.0.0.1:49180 (no ICE). A ClientHello
    from another address to the MF's media port must not touch the call: the MF is the DTLS
    client here (the offer says a=setup:passive, so the answer says a=setup:active; an
    actpass offer without ICE is answered passive), its peer is the declared address. (It used
    to latch to the stray source, fail its handshake and send BYE "media failed: dtls
    handshake failed".)
    The same happens under load when SIPp calls all declare one port and an MF media socket of
    another call is bound on it."""
    with SipSocket("udp", mf) as peer:
        invite = peer.request(
            "INVITE",
            headers=(("Content-Type", "application/sdp"),),
            body=FIXTURE_SDP.read_bytes().replace(b"a=setup:actpass", b"a=setup:passive"),
        )
        peer.send(invite)
        ok = peer.final()
        assert ok.status == 200, ok
        assert b"a=setup:active" in ok.body
        peer.send(in_dialog(peer, invite, ok, "ACK", 1))
        media_port = re.search(rb"m=application (\d+) ", ok.body)
        assert media_port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
            stray.bind((HOST, 0))
            stray.sendto(dtls_client_hello(), (HOST, int(media_port.group(1))))
        # media.setup_timeout is 2 s: nothing may come from the MF in the next 0.7 s.
        unexpected = peer.receive_raw(timeout=0.7)
        assert unexpected is None, unexpected.decode(errors="replace")
        peer.send(in_dialog(peer, invite, ok, "BYE", 2))
        assert peer.final().status == 200
    assert_idle(mf)
