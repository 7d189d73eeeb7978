"""The MF's DTLS identity: one certificate per process (RFC 8827 section 6.5, RFC 8122).

A :class:`CertificateStore` is created once at start-up and injected into every endpoint, so all
calls show the same ``a=fingerprint``. With a directory configured, the key and certificate are
kept there as PEM files and loaded again at the next start, so the fingerprint survives restarts
(until the certificate is renewed shortly before it expires).

Loading and saving touch the disk: call :meth:`CertificateStore.load_or_create` before the event
loop starts, or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from aiortc import RTCCertificate
from aiortc.rtcdtlstransport import SRTPProtectionProfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from avatar_mf.media.params import SUPPORTED_FINGERPRINT_ALGORITHMS

logger = logging.getLogger(__name__)

CERT_FILE = "dtls-cert.pem"
KEY_FILE = "dtls-key.pem"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
assert tuple(_HASHES) == SUPPORTED_FINGERPRINT_ALGORITHMS


def certificate_fingerprint(certificate: x509.Certificate, algorithm: str) -> str:
    """The RFC 8122 fingerprint of ``certificate``: upper-case hex pairs joined by colons.

    Raises ValueError for a hash function the MF does not support.
    """
    try:
        digest = certificate.fingerprint(_HASHES[algorithm.lower()]())
    except KeyError:
        raise ValueError(f"unsupported fingerprint hash function: {algorithm}") from None
    return ":".join(f"{b:02X}" for b in digest)


class _SharedContextCertificate(RTCCertificate):
    """aiortc's certificate, but one DTLS ``SSL.Context`` per SRTP profile set for the whole
    process instead of one per association: building a context (certificate and key import)
    costs ~0.8 ms of CPU per call and leaves reference cycles for the garbage collector. A
    context only holds configuration; each association has its own ``SSL.Connection``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(p.openssl_profile for p in srtp_profiles)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
        return ctx


class _NoUseSrtpCertificate(RTCCertificate):
    """An RTCCertificate whose DTLS context does not offer the use_srtp extension.

    Only for emulating IMS UEs that run a data-only DTLS association without DTLS-SRTP (RFC 8261
    does not require it); the MF itself keeps aiortc's default and offers it. Pinned to aiortc
    1.16: mirrors ``RTCCertificate._create_ssl_context`` minus ``set_tlsext_use_srtp``.
    """

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        fresh = SSL.Context(SSL.DTLS_METHOD)
        fresh.set_options(SSL.OP_NO_TICKET)
        fresh.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any)
        fresh.use_certificate(self._cert)
        fresh.use_privatekey(self._key)
        fresh.set_cipher_list(
            b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
            b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
        )
        return fresh


def _accept_any(*_args: Any) -> bool:
    # Self-signed peer certificates: identity is checked against a=fingerprint after the
    # handshake (RFC 8122 section 5), not through a CA chain.
    return True


class CertificateStore:
    """The process-wide DTLS key and self-signed certificate (ECDSA P-256, like aiortc's)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self._certificate = certificate
        self._rtc = _SharedContextCertificate(key=key, cert=certificate)
        self._rtc_no_use_srtp = _NoUseSrtpCertificate(key=key, cert=certificate)
        self._fingerprints: dict[str, str] = {}

    # construction

    @classmethod
    def generate(cls, *, validity_days: int = 365) -> CertificateStore:
        """A fresh key and certificate valid from yesterday for ``validity_days``."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, secrets.token_hex(16))])
        now = datetime.datetime.now(tz=datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=validity_days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateStore:
        """Load the PEM key and certificate kept in ``directory``."""
        folder = Path(directory)
        key = serialization.load_pem_private_key((folder / KEY_FILE).read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / KEY_FILE}: not an EC private key")
        certificate = x509.load_pem_x509_certificate((folder / CERT_FILE).read_bytes())
        return cls(key, certificate)

    @classmethod
    def load_or_create(
        cls,
        directory: str | os.PathLike[str] | None,
        *,
        validity_days: int = 365,
        renew_before_days: int = 7,
    ) -> CertificateStore:
        """The certificate kept in ``directory``, or a new one saved there.

        With ``directory=None`` the certificate lives as long as the process. A stored
        certificate that expires within ``renew_before_days`` (or cannot be read) is replaced.
        """
        if directory is None:
            return cls.generate(validity_days=validity_days)
        folder = Path(directory)
        if (folder / CERT_FILE).exists() and (folder / KEY_FILE).exists():
            try:
                store = cls.load(folder)
            except (OSError, ValueError) as exc:
                logger.warning("DTLS certificate in %s unreadable (%s): replacing it", folder, exc)
            else:
                margin = datetime.timedelta(days=renew_before_days)
                if store.expires - margin > datetime.datetime.now(tz=datetime.UTC):
                    return store
                logger.info("DTLS certificate in %s expires %s: renewing", folder, store.expires)
        store = cls.generate(validity_days=validity_days)
        store.save(folder)
        return store

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the key (mode 0600) and certificate as PEM, each atomically."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        _write_atomically(folder / KEY_FILE, key_pem, mode=0o600)
        _write_atomically(folder / CERT_FILE, cert_pem, mode=0o644)

    # use

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def expires(self) -> datetime.datetime:
        return self._certificate.not_valid_after_utc

    def fingerprint(self, algorithm: str = "sha-256") -> str:
        """The ``a=fingerprint`` value for ``algorithm`` (an RFC 8122 hash name)."""
        algorithm = algorithm.lower()
        value = self._fingerprints.get(algorithm)
        if value is None:
            value = self._fingerprints[algorithm] = certificate_fingerprint(
                self._certificate, algorithm
            )
        return value

    def fingerprints(
        self, algorithms: tuple[str, ...] = ("sha-256",)
    ) -> tuple[tuple[str, str], ...]:
        """(hash name, value) pairs for :attr:`LocalParams.fingerprints`."""
        return tuple((a.lower(), self.fingerprint(a)) for a in algorithms)

    def rtc_certificate(self, *, offer_use_srtp: bool = True) -> RTCCertificate:
        """The aiortc certificate object handed to RTCDtlsTransport (shared, not copied)."""
        return self._rtc if offer_use_srtp else self._rtc_no_use_srtp


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
