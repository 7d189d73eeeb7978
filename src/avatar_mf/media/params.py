"""Transport parameters of one data channel m-line, as plain values (no SDP text).

The lead fills :class:`RemoteParams` and :class:`StreamSpec` from the SDP model and writes
:class:`LocalParams` into the answer (or offer). Field names follow the SDP attributes they come
from:

- ``a=setup`` / ``a=fingerprint`` / ``a=tls-id``: RFC 8842, RFC 8122 section 5;
- ``a=sctp-port`` / ``a=max-message-size``: RFC 8841 sections 5 and 6;
- ``a=ice-ufrag`` / ``a=ice-pwd`` / ``a=candidate`` / ``a=ice-lite``: RFC 8839;
- ``a=dcmap``: RFC 8864 section 5.1 (one :class:`StreamSpec` per accepted dcmap line).

Everything here is immutable and validated on construction; a :class:`~avatar_mf.media.errors.
MediaParamsError` carries the SIP status to answer with (488).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from avatar_mf.media.errors import MediaParamsError

Setup = Literal["actpass", "active", "passive"]
"""``a=setup`` values a data channel m-line may carry (``holdconn`` is not usable here)."""

SUPPORTED_FINGERPRINT_ALGORITHMS = ("sha-1", "sha-224", "sha-256", "sha-384", "sha-512")
"""Hash functions (RFC 8122 section 5 names, lower case) whose fingerprints the MF verifies."""

MAX_STREAM_ID = 65534
"""Largest SCTP stream id a data channel may use (RFC 8831 section 6.5: 65535 is reserved)."""

REMOTE_DEFAULT_MAX_MESSAGE_SIZE = 65536
"""What to assume when the remote m-line has no ``a=max-message-size`` (RFC 8841 section 6.1)."""


def _check_address(address: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise MediaParamsError(f"not an IP address: {address!r}") from None


def _check_port(port: int, *, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise MediaParamsError(f"port out of range: {port}")


def _check_fingerprints(fingerprints: tuple[tuple[str, str], ...]) -> None:
    if not fingerprints:
        raise MediaParamsError("no a=fingerprint: DTLS needs at least one (RFC 8122)")
    for algorithm, value in fingerprints:
        if algorithm != algorithm.lower():
            raise MediaParamsError(f"fingerprint hash name must be lower case: {algorithm!r}")
        if not value:
            raise MediaParamsError(f"empty {algorithm} fingerprint")


def _check_max_message_size(size: int) -> None:
    if size < 0:
        raise MediaParamsError(f"negative max-message-size: {size}")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One pre-negotiated data channel (an accepted ``a=dcmap`` line, RFC 8864 section 5.1)."""

    stream_id: int
    """SCTP stream id, 0-65534; both ends use the same id (``negotiated=True``)."""
    label: str = ""
    """``label=`` of the dcmap line."""
    subprotocol: str = ""
    """``subprotocol=`` of the dcmap line, e.g. ``"http"`` for bootstrap channels."""
    ordered: bool = True
    """``ordered=`` (default 1 = ordered delivery)."""
    max_retr: int | None = None
    """``max-retr=``: partial reliability by retransmission count; exclusive with max_time."""
    max_time: int | None = None
    """``max-time=`` in milliseconds: partial reliability by lifetime; exclusive with max_retr."""
    priority: int | None = None
    """``priority=``; carried for the answer only (aiortc does not schedule by priority)."""

    def __post_init__(self) -> None:
        if not 0 <= self.stream_id <= MAX_STREAM_ID:
            raise MediaParamsError(f"stream id out of range 0-{MAX_STREAM_ID}: {self.stream_id}")
        if self.max_retr is not None and self.max_time is not None:
            raise MediaParamsError(
                f"stream {self.stream_id}: max-retr and max-time are exclusive (RFC 8864 5.1.1)"
            )
        if self.max_retr is not None and not 0 <= self.max_retr <= 0xFFFF:
            raise MediaParamsError(f"stream {self.stream_id}: max-retr out of range")
        if self.max_time is not None and not 0 <= self.max_time <= 0xFFFF:
            raise MediaParamsError(f"stream {self.stream_id}: max-time out of range")


@dataclass(frozen=True, slots=True)
class RemoteIce:
    """The remote party's ICE attributes (RFC 8839 section 5)."""

    ufrag: str
    """``a=ice-ufrag``."""
    pwd: str
    """``a=ice-pwd``."""
    candidates: tuple[str, ...] = ()
    """Raw ``a=candidate`` values (the text after ``a=candidate:``); TCP ones are ignored.
    When empty, the m-line's ``c=``/port is used as the only host candidate."""
    ice_lite: bool = False
    """``a=ice-lite`` at session level: the MF then takes the controlling role."""


@dataclass(frozen=True, slots=True)
class RemoteParams:
    """What the MF learns about the peer's data channel transport from its SDP."""

    address: str
    """Connection address of the m-line (``c=``), IPv4 or IPv6 literal."""
    port: int
    """Port of the m-line; with no ICE, DTLS goes straight to ``address:port``."""
    setup: Setup
    """Remote ``a=setup``; decides the DTLS roles (RFC 8842 section 5.2)."""
    fingerprints: tuple[tuple[str, str], ...]
    """``a=fingerprint`` pairs: (lower-case hash name, e.g. ``"sha-1"``, hex with colons)."""
    sctp_port: int = 5000
    """Remote ``a=sctp-port``."""
    max_message_size: int = REMOTE_DEFAULT_MAX_MESSAGE_SIZE
    """Remote ``a=max-message-size`` (0 = no limit); the MF never sends larger messages."""
    ice: RemoteIce | None = None
    """ICE attributes, or None for the plain DTLS-over-UDP path used by IMS UEs."""
    tls_id: str | None = None
    """Remote ``a=tls-id``; a change in a re-offer means a new DTLS association (RFC 8842)."""

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_port(self.port, allow_zero=True)
        if self.setup not in ("actpass", "active", "passive"):
            raise MediaParamsError(f"unusable a=setup:{self.setup}")
        _check_fingerprints(self.fingerprints)
        _check_port(self.sctp_port)
        _check_max_message_size(self.max_message_size)


@dataclass(frozen=True, slots=True)
class LocalIce:
    """The ICE attributes to write into the local SDP (host candidates only)."""

    ufrag: str
    """``a=ice-ufrag``."""
    pwd: str
    """``a=ice-pwd``."""
    candidates: tuple[str, ...]
    """Values for ``a=candidate:`` lines; followed by ``a=end-of-candidates`` (no trickle)."""
    ice_lite: bool = False
    """The local agent is ICE lite (:mod:`.ice_lite`): ``a=ice-lite`` at session level."""


@dataclass(frozen=True, slots=True)
class LocalParams:
    """What the local side writes into its data channel m-line."""

    address: str
    """Connection address for ``c=`` (the media host)."""
    port: int
    """Port for the m-line: the UDP socket (no ICE) or the default ICE candidate."""
    setup: Setup
    """Local ``a=setup``: ``active``/``passive`` in an answer, usually ``actpass`` in an offer."""
    fingerprints: tuple[tuple[str, str], ...]
    """``a=fingerprint`` pairs of the process certificate (sha-256 at least)."""
    sctp_port: int
    """Local ``a=sctp-port``."""
    max_message_size: int
    """Local ``a=max-message-size``."""
    tls_id: str
    """Local ``a=tls-id`` (RFC 8842 section 5.3), fresh per DTLS association."""
    ice: LocalIce | None = None
    """ICE attributes, or None when the m-line runs DTLS over plain UDP."""


def as_remote(local: LocalParams, *, ice_lite: bool = False) -> RemoteParams:
    """What a peer reads from an m-line built from ``local`` (for tests and test UEs, which
    exchange parameters without SDP text); ``ice_lite`` when the local agent is lite or
    ``ice_lite`` says so."""
    ice = None
    if local.ice is not None:
        ice = RemoteIce(
            ufrag=local.ice.ufrag,
            pwd=local.ice.pwd,
            candidates=local.ice.candidates,
            ice_lite=ice_lite or local.ice.ice_lite,
        )
    return RemoteParams(
        address=local.address,
        port=local.port,
        setup=local.setup,
        fingerprints=local.fingerprints,
        sctp_port=local.sctp_port,
        max_message_size=local.max_message_size,
        ice=ice,
        tls_id=local.tls_id,
    )


DtlsRole = Literal["client", "server"]


def answer_setup(offer_setup: Setup, *, actpass_answer: Literal["active", "passive"]) -> Setup:
    """The ``a=setup`` of an answer to an offer carrying ``offer_setup`` (RFC 8842 section 5.3:
    the answer to ``actpass`` is the answerer's choice, given here as ``actpass_answer``)."""
    if offer_setup == "actpass":
        return actpass_answer
    return "passive" if offer_setup == "active" else "active"


def dtls_role(local_setup: Setup, remote_setup: Setup) -> DtlsRole:
    """The local DTLS role once both ``a=setup`` values are known: ``active`` is the DTLS client
    (RFC 4145 section 4 via RFC 8842 section 5.2). Exactly one side must be active."""
    if local_setup == "actpass":
        if remote_setup == "actpass":
            raise MediaParamsError("a=setup:actpass in an answer")
        local_setup = "passive" if remote_setup == "active" else "active"
    if remote_setup != "actpass" and remote_setup == local_setup:
        raise MediaParamsError(f"both sides a=setup:{local_setup}")
    return "client" if local_setup == "active" else "server"
