"""``avatar-mf tls generate-cert``: a lab CA and server certificate that a TLS client
verifies for the hosts given, the settings printed, files kept unless --force."""

from __future__ import annotations

import io
import ssl
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from avatar_mf.cli import main
from avatar_mf.config import load_config


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ={})
    return code, out.getvalue(), err.getvalue()


def test_generate_cert_writes_a_pair_the_node_and_clients_use(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    code, text, err = _run(
        "tls", "generate-cert", "--out", str(out), "--host", "mf.lab.example", "--host", "::1"
    )
    assert (code, err) == (0, "")
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mf.lab.example"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["::1"]
    # The printed [sip] table is a valid configuration naming the files.
    table = text[text.index("[sip]") : text.index("Clients trust")]
    sip = tomllib.loads(table)["sip"]
    env = {
        "AVATAR_MF_SIP__TRANSPORTS": ",".join(sip["transports"]),
        "AVATAR_MF_SIP__TLS_CERTIFICATE": sip["tls_certificate"],
        "AVATAR_MF_SIP__TLS_PRIVATE_KEY": sip["tls_private_key"],
    }
    config = load_config(None, env=env).sip
    assert config.tls_certificate == (out / "cert.pem").resolve()
    # A client trusting ca.pem accepts the server certificate for the names given.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "cert.pem", out / "key.pem")
    client = ssl.create_default_context(cafile=str(out / "ca.pem"))
    for name, ok in (("mf.lab.example", True), ("other.example", False)):
        assert _handshake(client, server, name) is ok


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> bool:
    """An in-memory TLS handshake; True when the client accepted the server's certificate."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    for _ in range(10):
        if not c_done:
            try:
                c.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError:
                return False
        s_in.write(c_out.read())
        if not s_done:
            try:
                s.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if c_done and s_done:
            return True
    return False


def test_existing_files_are_kept_without_force(tmp_path: Path) -> None:
    assert _run("tls", "generate-cert", "--out", str(tmp_path))[0] == 0
    before = (tmp_path / "cert.pem").read_bytes()
    code, _, err = _run("tls", "generate-cert", "--out", str(tmp_path))
    assert code == 1 and "--force" in err
    assert (tmp_path / "cert.pem").read_bytes() == before
    assert _run("tls", "generate-cert", "--out", str(tmp_path), "--force")[0] == 0
    assert (tmp_path / "cert.pem").read_bytes() != before


def test_default_hosts_and_bad_days(tmp_path: Path) -> None:
    assert _run("tls", "generate-cert", "--out", str(tmp_path / "a"))[0] == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "a" / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    code, _, err = _run("tls", "generate-cert", "--out", str(tmp_path / "b"), "--days", "0")
    assert code == 2 and "--days" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("argv", [["tls"], ["tls", "generate-cert"]])
def test_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(*argv)
    assert exited.value.code == 2
