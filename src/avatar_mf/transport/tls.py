"""SIP over TLS (RFC 3261 section 26.2, RFC 5630) and the TLS side of ``wss`` (RFC 7118).

The ``tls`` transport is the TCP transport (:mod:`avatar_mf.transport.tcp`) over TLS: the same
Content-Length framing, connection reuse and limits, with ``TLS`` in Via and ``transport=tls``
in the MF's Contact. The node presents the certificate chain and key of ``sip.tls_certificate``
and ``sip.tls_private_key`` (PEM); it does not ask clients for certificates (a browser or a UE
authenticates itself in SIP, not in TLS). TLS 1.2 is the oldest version offered (RFC 5630
section 3.1.1 asks for TLS; older versions are obsolete, RFC 8996). A handshake that fails
(plain TCP bytes, a client that rejects the certificate) or does not finish within the
handshake timeout closes that connection only; the listener goes on.

When the MF has to open a TLS connection itself (a BYE whose connection is gone), it verifies
the peer's certificate against the system's trust store and the host name it connects to.

:func:`generate_lab_certificate` makes the self-signed pair of ``avatar-mf tls generate-cert``:
a one-off CA (its key is not kept, so it can sign nothing else) and a server certificate it
signed for the host names and addresses given; clients trust the CA file.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_LAB_HOSTS",
    "LabCertificate",
    "client_context",
    "generate_lab_certificate",
    "server_context",
]

#: Names the lab certificate is valid for when none is given.
DEFAULT_LAB_HOSTS = ("localhost", "127.0.0.1", "::1")


def server_context(certificate: Path, private_key: Path) -> ssl.SSLContext:
    """The server context of the tls and wss listeners.

    Raises OSError (FileNotFoundError, ssl.SSLError) when the files cannot be read or do not
    hold a matching PEM certificate and key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=certificate, keyfile=private_key)
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system trust store, or ``cafile`` when given."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True, slots=True)
class LabCertificate:
    """A generated lab pair, as PEM bytes."""

    #: The one-off CA certificate: what clients trust (browsers import it, the test UE and
    #: SIPp load it).
    ca_pem: bytes
    #: The server certificate (sip.tls_certificate).
    certificate_pem: bytes
    #: The server's private key, unencrypted (sip.tls_private_key).
    key_pem: bytes


def _subject_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def generate_lab_certificate(
    hosts: Sequence[str] = DEFAULT_LAB_HOSTS,
    *,
    days: int = 365,
    now: datetime.datetime | None = None,
) -> LabCertificate:
    """A CA and a server certificate (ECDSA P-256) for ``hosts`` (names or IP addresses),
    valid for ``days`` from ``now`` (default: the current time)."""
    if not hosts:
        raise ValueError("at least one host name or address is needed")
    if days < 1:
        raise ValueError("days must be at least 1")
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatar-mf lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "avatar-mf lab CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatar-mf lab"),
                    x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64]),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return LabCertificate(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        certificate_pem=server.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
