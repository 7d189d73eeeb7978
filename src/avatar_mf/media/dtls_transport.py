"""DTLS for a data-only association, as IMS UEs run it (RFC 8261, RFC 8122, RFC 8842).

aiortc's ``RTCDtlsTransport`` is used as is, with two behaviours adjusted for IMS UEs:

1. It fails a handshake that did not negotiate a DTLS-SRTP profile (``use_srtp``), although a
   data channel association carries no SRTP and RFC 8261 does not require the extension. Here a
   handshake without ``use_srtp`` is accepted (no SRTP keys are derived).
2. It verifies only sha-256/384/512 fingerprints and fails when the peer offers only others,
   while IMS offers often carry ``a=fingerprint:SHA-1``. Here sha-1 and sha-224 are verified too
   (RFC 8122 section 5 lists them; RFC 8122 prefers the certificate's signature hash but the
   peer's choice is what we must check).

Both are overrides of private methods of aiortc 1.16 (``_validate_peer_identity``,
``_setup_srtp``), which is why aiortc is pinned. Everything else, including the peer certificate
verification callback and the fingerprint rule "at least one supported, all supported match",
is unchanged.
"""

from __future__ import annotations

import logging

from aiortc.rtcdtlstransport import RTCDtlsParameters, RTCDtlsTransport, State

from avatar_mf.media.certificate import certificate_fingerprint
from avatar_mf.media.params import SUPPORTED_FINGERPRINT_ALGORITHMS

logger = logging.getLogger(__name__)


def fingerprints_match(
    peer_fingerprints: dict[str, str], remote: list[tuple[str, str]]
) -> tuple[bool, str]:
    """Apply aiortc's rule to a wider set of hash functions: at least one fingerprint with a
    supported hash, and every supported one matches. ``peer_fingerprints`` maps hash names to
    the peer certificate's fingerprints. Returns (ok, reason)."""
    supported = [(a.lower(), v) for a, v in remote if a.lower() in peer_fingerprints]
    if not supported:
        return False, "no fingerprint with a supported hash function"
    for algorithm, value in supported:
        if value.upper() != peer_fingerprints[algorithm]:
            return False, f"{algorithm} fingerprint mismatch"
    return True, ""


class ImsDtlsTransport(RTCDtlsTransport):
    """``RTCDtlsTransport`` accepting data-only handshakes and SHA-1 fingerprints."""

    failure_reason: str | None = None
    """Why the handshake was rejected after it completed (fingerprint), else None."""

    def _validate_peer_identity(self, remoteParameters: RTCDtlsParameters) -> None:
        # Replaces aiortc's check, which ignores sha-1 fingerprints (see the module docstring).
        assert self._ssl is not None
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            self.failure_reason = "no peer certificate"
            self._set_state(State.FAILED)
            return
        # Only the hash functions the peer's a=fingerprint lines use (one, typically): each
        # digest of the certificate costs CPU on every call set-up.
        wanted = {f.algorithm.lower() for f in remoteParameters.fingerprints}
        peer = {
            a: certificate_fingerprint(certificate, a)
            for a in SUPPORTED_FINGERPRINT_ALGORITHMS
            if a in wanted
        }
        ok, reason = fingerprints_match(
            peer, [(f.algorithm, f.value) for f in remoteParameters.fingerprints]
        )
        if not ok:
            logger.info("DTLS peer rejected: %s", reason)
            self.failure_reason = reason
            self._set_state(State.FAILED)

    def _setup_srtp(self) -> None:
        # aiortc fails the transport when no DTLS-SRTP profile was negotiated; a data channel
        # association needs none (see the module docstring), so only derive SRTP keys when one was.
        assert self._ssl is not None
        if self._ssl.get_selected_srtp_profile():
            super()._setup_srtp()
        else:
            logger.debug("DTLS handshake without use_srtp: data only")
