"""SIGHUP loads the tls/wss certificate again (issue 9: reload TLS certificates), on a real
node: a renewal that replaced the files at the same paths is presented to the next handshake;
a broken pair is refused (the reload with it) and the node keeps presenting the last good one.
"""

from __future__ import annotations

import signal
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.transport.tls import LabCertificate, client_context, generate_lab_certificate

HOST = "127.0.0.1"
STEP = 10.0

pytestmark = pytest.mark.timeout(90)


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def write_pair(folder: Path, pair: LabCertificate, name: str) -> Path:
    (folder / "cert.pem").write_bytes(pair.certificate_pem)
    (folder / "key.pem").write_bytes(pair.key_pem)
    ca = folder / f"ca-{name}.pem"
    ca.write_bytes(pair.ca_pem)
    return ca


def presented(port: int, ca: Path) -> bytes:
    """The DER certificate the node presents, verified against ``ca`` (raises if it fails)."""
    context = client_context(ca)
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sighup_presents_a_renewed_certificate_and_refuses_a_broken_one(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    first = generate_lab_certificate(("localhost", HOST))
    ca_first = write_pair(folder, first, "first")
    tls_port = free_port()
    mf = MfProcess.start(
        tmp_path / "mf",
        settings={
            "SIP__TRANSPORTS": "udp,tls",
            "SIP__TLS_PORT": str(tls_port),
            "SIP__TLS_CERTIFICATE": str(folder / "cert.pem"),
            "SIP__TLS_PRIVATE_KEY": str(folder / "key.pem"),
        },
    )
    try:
        before = presented(tls_port, ca_first)
        # A renewal: other files at the same paths (as certbot leaves them), then SIGHUP.
        second = generate_lab_certificate(("localhost", HOST))
        ca_second = write_pair(folder, second, "second")
        with pytest.raises(ssl.SSLCertVerificationError):
            presented(tls_port, ca_second)  # not before the reload
        mf.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificate loaded again" in mf.log_text(), "no reload line")
        after = presented(tls_port, ca_second)
        assert after != before

        # A key that does not match: the reload is refused, the renewed pair stays in use.
        (folder / "key.pem").write_bytes(generate_lab_certificate((HOST,)).key_pem)
        mf.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in mf.log_text(), "no refusal line")
        assert presented(tls_port, ca_second) == after
        assert mf.proc.poll() is None
    finally:
        code = mf.stop()
    assert code == 0, mf.log_text()[-3000:]
