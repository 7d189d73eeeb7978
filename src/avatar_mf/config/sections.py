"""The settings, section by section: one frozen pydantic model per ``[section]`` of the file.

Every model rejects unknown keys and documents each setting in an attribute docstring (the
source of the generated settings table). :class:`AppConfig` holds one attribute per section;
:data:`SECTIONS` maps section names to their models and :func:`iter_setting_fields` walks
every setting, including those of nested tables such as ``[pipeline.scene]``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import types
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from avatar_mf import __version__
from avatar_mf.config.fields import (
    AdminToken,
    DirectoryPath,
    FilePath,
    HeaderText,
    Host,
    HttpBaseUrl,
    IPNetwork,
    LevelName,
    LoggerName,
    MediaAddress,
    StreamId,
    TransportName,
    WebOrigin,
    cross_field_error,
    custom_error,
    is_wildcard,
    non_empty,
    unique,
)

__all__ = [
    "SECTIONS",
    "STAGE_KINDS",
    "AdminConfig",
    "AnimationDataSettings",
    "AppConfig",
    "BootstrapConfig",
    "CallsConfig",
    "LifecycleConfig",
    "LogConfig",
    "MediaConfig",
    "PipelineConfig",
    "RenderConfig",
    "Section",
    "SipConfig",
    "StageSettings",
    "StorageConfig",
    "iter_setting_fields",
    "table_model",
]


class Section(BaseModel):
    """Base of every settings model: frozen, unknown keys rejected, docstrings as docs.

    Integers, numbers and booleans are strict (``StrictInt``, ``StrictFloat``, ``StrictBool``):
    ``port = 5060.0``, ``t1 = "0.5"`` and ``enabled = "yes"`` are problems, not silently
    converted (an integer is still a valid number). Environment variables are read as their
    setting's type first (:mod:`avatar_mf.config.env`).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,  # the attribute docstrings below are the settings' docs
        allow_inf_nan=False,
    )


class SipConfig(Section):
    """``[sip]``: SIP listeners, transaction timers and admission control (RFC 3261)."""

    host: Host = "127.0.0.1"
    """Address (or host name) the SIP listeners bind to, for every transport. Use 0.0.0.0 or ::
    to listen on all interfaces; then set advertised_host."""

    port: StrictInt = Field(default=5060, ge=1, le=65535)
    """SIP port of the udp and tcp transports (tls, ws and wss have their own ports)."""

    transports: Annotated[
        tuple[TransportName, ...], AfterValidator(non_empty), AfterValidator(unique)
    ] = ("udp", "tcp")
    """Transports to listen on: any of "udp", "tcp" (RFC 3261), "tls" (RFC 3261 26, on
    tls_port), "ws" and "wss" (SIP over WebSocket, RFC 7118, on ws_port and wss_port). tls and
    wss need tls_certificate and tls_private_key."""

    tls_port: StrictInt = Field(default=5061, ge=1, le=65535)
    """Port of the tls transport (SIP over TLS)."""

    ws_port: StrictInt = Field(default=5066, ge=1, le=65535)
    """Port of the ws transport (SIP over WebSocket, any request path)."""

    wss_port: StrictInt = Field(default=7443, ge=1, le=65535)
    """Port of the wss transport (SIP over secure WebSocket, any request path)."""

    tls_certificate: FilePath | None = Field(default=None, validate_default=True)
    """PEM file of the certificate chain the tls and wss listeners present (the node's
    certificate first). Required when transports lists tls or wss. Loaded again on SIGHUP
    (a renewed file at the same path). `avatar-mf tls generate-cert` writes a self-signed one
    for labs."""

    tls_private_key: FilePath | None = Field(default=None, validate_default=True)
    """PEM file of the private key of tls_certificate (unencrypted). Required when transports
    lists tls or wss."""

    ws_origins: Annotated[tuple[WebOrigin, ...], AfterValidator(unique)] = ()
    """Origins (scheme://host[:port]) whose web pages may open a ws or wss connection; a
    handshake with another Origin is answered 403. Empty: any origin (labs). A handshake
    without Origin (not from a browser) is always accepted."""

    ws_ping_interval: StrictFloat = Field(default=30.0, ge=0)
    """Seconds of silence after which the node sends a WebSocket ping on a ws or wss
    connection; the pong keeps a live browser's connection open past the idle timeout.
    0: no pings."""

    advertised_host: Host | None = Field(default=None, validate_default=True)
    """Address or host name put in Via sent-by and Contact. Unset: host. Required when host is a
    wildcard address, and when the MF is reached through NAT."""

    t1: StrictFloat = Field(default=0.5, gt=0)
    """RFC 3261 timer T1 in seconds: round-trip time estimate, base of the retransmission
    timers A, E and G and of the 64*T1 transaction timeouts B, F, H and J."""

    t2: StrictFloat = Field(default=4.0, gt=0, validate_default=True)
    """RFC 3261 timer T2 in seconds: maximum retransmission interval for non-INVITE requests
    and INVITE responses. Must be greater than t1."""

    t4: StrictFloat = Field(default=5.0, gt=0)
    """RFC 3261 timer T4 in seconds: maximum time a message stays in the network (timers I
    and K)."""

    max_message_size: StrictInt = Field(default=65535, ge=1300, le=16 * 1024 * 1024)
    """Largest SIP message accepted, in bytes; larger ones are rejected (513 on TCP) or dropped
    (UDP)."""

    max_dialogs: StrictInt = Field(default=10000, ge=1)
    """Maximum concurrent dialogs; new INVITEs beyond it are answered 503 with Retry-After."""

    retry_after: StrictInt = Field(default=5, ge=1, le=86400)
    """Seconds put in the Retry-After header of 503 responses sent when overloaded."""

    trusted_peers: Annotated[tuple[IPNetwork, ...], AfterValidator(non_empty)] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )
    """CIDR networks allowed to send requests (e.g. the P-CSCF/IMS core); requests from other
    addresses are answered 403. Use 0.0.0.0/0 and ::/0 to accept any peer."""

    asserted_identity_peers: tuple[IPNetwork, ...] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )
    """CIDR networks of the peers trusted to assert the caller's identity in
    P-Asserted-Identity (RFC 3325: the P-CSCF / IMS core). From other sources the header is
    ignored and the caller is its From URI. Avatar authorization (owner, grants) uses that
    identity. The default, loopback, is for labs: in production list only the P-CSCFs."""

    rate_limit_per_source: StrictInt = Field(default=2000, ge=0)
    """Sustained SIP packets per second accepted from one source address (token bucket refill
    rate); the excess is dropped unanswered (answering a flood would amplify it). One P-CSCF
    carries every UE's traffic: a call is about 3 requests, so 2000 serves ~650 calls/s.
    0 disables rate limiting."""

    rate_limit_burst: StrictInt = Field(default=4000, ge=0)
    """Token bucket size: requests one source may send in a burst above the sustained rate.
    Must be at least 1 when rate limiting is enabled."""

    rate_limit_bytes_per_source: StrictInt = Field(default=8 * 1024 * 1024, ge=0)
    """Sustained SIP bytes per second accepted from one source address (a second token bucket
    beside the message one; it holds two seconds' worth). A message passes when both buckets
    allow it, so large messages cannot outrun the message rate. 0 disables the byte limit."""

    max_transactions: StrictInt = Field(default=100000, ge=0)
    """Live server transactions the node keeps at most (over UDP one lasts 64*T1 after its final
    response); a new request beyond it is answered 503 with Retry-After. 0: no cap."""

    transaction_memory: StrictInt = Field(default=256 * 1024 * 1024, ge=0)
    """Bytes the live server transactions may hold (requests until answered, then the response
    and the headers that matching needs); a new request beyond it is answered 503. 0: no cap."""

    transaction_memory_per_source: StrictInt = Field(default=64 * 1024 * 1024, ge=0)
    """The same budget for the transactions of one source address, so one peer cannot use up
    the node's. 0: no cap."""

    min_se: StrictInt = Field(default=90, ge=90)
    """RFC 4028 Min-SE in seconds: the shortest session interval accepted (422 below it).
    At least 90."""

    session_expires: StrictInt = Field(default=1800, ge=90, validate_default=True)
    """RFC 4028 session interval in seconds, requested in Session-Expires; a dialog not
    refreshed in time is released. Must be at least min_se."""

    user_agent: HeaderText = f"avatar-mf/{__version__}"
    """Value of the User-Agent / Server header. Default: avatar-mf/<version>."""

    tcp_idle_timeout: StrictFloat = Field(default=300.0, gt=0)
    """Seconds after which an inbound connection (tcp, tls, ws, wss) that received nothing (no
    message, no keep-alive, no WebSocket ping or pong) is closed."""

    tcp_max_connections: StrictInt = Field(default=4096, ge=0)
    """Inbound connections open at once over tcp, tls, ws and wss together; more are closed as
    they are accepted (over ws and wss before any handshake). 0: no cap."""

    tcp_max_connections_per_source: StrictInt = Field(default=256, ge=0)
    """Inbound connections open at once from one address (tcp, tls, ws and wss together).
    0: no cap."""

    tcp_max_write_buffer: StrictInt = Field(default=1024 * 1024, ge=0)
    """Bytes queued for a peer that does not read (tcp, tls, ws, wss); past it the connection
    is closed. 0: no limit."""

    tcp_message_timeout: StrictFloat = Field(default=30.0, ge=0)
    """Seconds a SIP message may take to arrive whole over tcp or tls, from its first byte, and
    a ws or wss connection to complete its opening handshake; a slower one closes the
    connection (a trickle of bytes cannot hold it open). 0: no deadline."""

    fd_reserve: StrictInt = Field(default=128, ge=0)
    """File descriptors kept free (below the RLIMIT_NOFILE soft limit) for media sockets, the
    admin listener and storage: while fewer remain, connections are refused (tcp, tls, ws,
    wss); while fewer than half remain, INVITE and OPTIONS are answered 503. Each is logged as
    a warning when it starts. 0: no reserve."""

    answer_delay: StrictFloat = Field(default=0.0, ge=0, le=300)
    """Seconds between 100 Trying and the answer to an INVITE ("ring time"). 0 answers at
    once; a lab sets it to test CANCEL before the answer."""

    @field_validator("advertised_host")
    @classmethod
    def _advertised_host_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        host = info.data.get("host")
        if value is None and host is not None and is_wildcard(host):
            raise cross_field_error(
                "must be set when sip.host is a wildcard address ({host})",
                related="host",
                host=host,
            )
        return value

    @field_validator("tls_certificate", "tls_private_key")
    @classmethod
    def _tls_files_needed(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        secure = [t for t in info.data.get("transports") or () if t in ("tls", "wss")]
        if value is None and secure:
            raise cross_field_error(
                "must be set when sip.transports lists {secure}",
                related="transports",
                secure=" and ".join(secure),
            )
        return value

    @field_validator("t2")
    @classmethod
    def _t2_above_t1(cls, value: float, info: ValidationInfo) -> float:
        t1 = info.data.get("t1")
        if t1 is not None and value <= t1:
            raise cross_field_error("must be greater than sip.t1 ({t1})", related="t1", t1=t1)
        return value

    @field_validator("rate_limit_burst")
    @classmethod
    def _burst_when_limited(cls, value: int, info: ValidationInfo) -> int:
        rate = info.data.get("rate_limit_per_source")
        if value == 0 and rate:
            raise cross_field_error(
                "must be at least 1 when sip.rate_limit_per_source is not 0",
                related="rate_limit_per_source",
            )
        return value

    @field_validator("session_expires")
    @classmethod
    def _session_expires_above_min_se(cls, value: int, info: ValidationInfo) -> int:
        min_se = info.data.get("min_se")
        if min_se is not None and value < min_se:
            raise cross_field_error(
                "must be greater than or equal to sip.min_se ({min_se})",
                related="min_se",
                min_se=min_se,
            )
        return value

    @property
    def contact_host(self) -> str:
        """The host for Via and Contact: advertised_host, else host."""
        return self.advertised_host if self.advertised_host is not None else self.host

    def is_trusted(self, address: str) -> bool:
        """Whether a request from ``address`` (an IP literal) is admitted by trusted_peers.

        IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are checked as IPv4. Raises ValueError
        if ``address`` is not an IP address.
        """
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_peers)


class MediaConfig(Section):
    """``[media]``: ICE, DTLS and SCTP for the data channels (RFC 8831, RFC 8841)."""

    host: MediaAddress = "127.0.0.1"
    """IP address offered as the ICE host candidate and used for media sockets. Must be a
    concrete address reachable by the UE, not a wildcard."""

    sctp_port: StrictInt = Field(default=5000, ge=1, le=65535)
    """SCTP port announced in a=sctp-port (RFC 8841)."""

    max_message_size: StrictInt = Field(default=262144, ge=1)
    """Largest data channel message accepted, in bytes; announced in a=max-message-size
    (RFC 8841)."""

    setup_timeout: StrictFloat = Field(default=10.0, gt=0)
    """Seconds within which ICE, DTLS and SCTP must all complete after the answer is sent;
    otherwise the call's media is released."""

    # 1160 is aiortc 1.16's USERDATA_MAX_LENGTH: the most that fits the minimum IPv6 MTU
    # (1280) after IP, UDP, DTLS and SCTP headers; the media layer rejects anything larger.
    sctp_max_chunk: StrictInt = Field(default=1160, ge=64, le=1160)
    """Largest SCTP DATA chunk user-data payload, in bytes. The default, also the maximum,
    fits the minimum IPv6 MTU after UDP and DTLS overhead; lower it for paths with a smaller
    MTU (e.g. tunnels)."""

    sctp_sack_every: StrictInt = Field(default=2, ge=1, le=4)
    """SCTP acknowledges every this many packets with DATA, or within 200 ms of the first
    (RFC 9260 6.2 delayed SACK; at once on a gap or a duplicate). 1: a SACK per packet."""

    sctp_bundle: StrictBool = True
    """Bundle small data channel messages sent together into one SCTP packet (RFC 9260
    6.10) instead of one packet, DTLS record and datagram each."""

    sctp_fast_paths: StrictBool = True
    """Send a message that fits one SCTP DATA chunk, and take a SACK that only moves the
    cumulative TSN ack forward, in the MF's own code instead of aiortc's queues and chunk
    objects; everything else (gaps, retransmissions, fragments, a full window) goes through
    aiortc. false: aiortc's path for every message and SACK."""

    dtls_fast_records: StrictBool = True
    """After the DTLS handshake, seal and open application data records of the AEAD cipher
    suites (AES-GCM, ChaCha20-Poly1305) in the MF's own record layer (RFC 6347 4.1) instead of
    through OpenSSL, which keeps the handshake and alerts. false: OpenSSL for every record."""

    ice_lite: StrictBool = True
    """Answer ICE offers as an ICE-lite agent (RFC 8445 2.5, a=ice-lite in the answer): one
    host candidate, no checks of its own; it answers the full agent's checks and takes the
    pair it nominates, and ends the media after 30 s without a check (RFC 7675 consent).
    false: aioice's full ICE agent. Offers the MF makes, and lite offerers, always get the
    full agent."""

    certificate_dir: DirectoryPath | None = None
    """Directory holding the DTLS certificate and key (created there if missing). Unset:
    <storage.path>/dtls."""

    accept_sha1_fingerprint: StrictBool = True
    """Accept a=fingerprint lines using SHA-1 from the UE (some older UEs send only SHA-1).
    SHA-256 and stronger are always accepted."""

    bootstrap_stream_ids: Annotated[tuple[StreamId, ...], AfterValidator(unique)] = (
        0,
        10,
        100,
        110,
    )
    """SCTP stream ids of the bootstrap data channels (3GPP TS 26.114 section 6.2.10)."""

    min_application_stream_id: StrictInt = Field(
        default=1000, ge=0, le=65534, validate_default=True
    )
    """Lowest SCTP stream id used for application data channels. Must be above every
    bootstrap stream id."""

    audio: StrictBool = True
    """Answer audio m-lines with real RTP: IMS style (RTP/AVP, RTP/AVPF, no ICE) and WebRTC
    style (UDP/TLS/RTP/SAVPF BUNDLEd with the data channel, SRTP): codecs from the codec
    registry, mixing and forwarding in rooms. Off: audio m-lines get port 0."""

    audio_codecs: tuple[str, ...] = ("AMR-WB", "AMR", "PCMU", "PCMA", "opus")
    """Audio codecs (rtpmap names) the MF accepts and offers, best first; a name this host
    cannot serve (a missing library) is skipped. WebRTC audio m-lines take opus first, then
    PCMU/PCMA, from this list. EVS is not available."""

    advertised_host: MediaAddress | None = None
    """Address written in the audio m-lines' c= when it differs from host (1:1 NAT: the
    sockets bind host, the UEs send to this). Unset: host."""

    rtp_port_min: StrictInt = Field(default=30000, ge=1024, le=65534)
    """Lowest UDP port of the RTP range (RTP on even ports, RTCP on the next odd one)."""

    rtp_port_max: StrictInt = Field(default=39999, ge=1025, le=65535)
    """Highest UDP port of the RTP range."""

    rtp_timeout: StrictFloat = Field(default=30.0, ge=0)
    """Seconds without a valid RTP packet after which a call is ended with BYE (Reason
    "media timeout"). 0: never."""

    jitter_buffer_ms: StrictInt = Field(default=60, ge=20, le=1000)
    """Audio jitter buffer depth in milliseconds (incoming audio is played out this late)."""

    video: StrictBool = True
    """Answer IMS-style video m-lines (RTP/AVP, RTP/AVPF, no ICE, H.264 or VP8; needs audio
    on): received pictures go to the avatar session, and with a network-animating stage the
    rendered avatar is sent to avatar-assisted receivers. Off: video m-lines get port 0."""

    video_bitrate: StrictInt = Field(default=600_000, ge=50_000, le=20_000_000)
    """Target bit rate of the rendered avatar video sent to each receiver, bits per second
    (the frame size and rate are [render] size and rate)."""

    video_encoders: StrictInt = Field(default=2, ge=1, le=64)
    """Threads that encode the rendered avatar video (one encode per receiver and frame,
    ~2-3 ms at 512x512); a frame that finds them all busy past a short queue is skipped."""

    max_audio_participants: StrictInt = Field(default=8, ge=2, le=64)
    """Audio members per room (an N-1 mix costs N decodes and N encodes every 20 ms); past
    it a call's audio m-line is answered with port 0."""

    @field_validator("audio_codecs")
    @classmethod
    def _codec_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not n or any(c.isspace() or c in "/;" for c in n) for n in value):
            raise custom_error("config_codecs", "must list rtpmap encoding names, e.g. PCMU")
        return value

    @field_validator("rtp_port_max")
    @classmethod
    def _range_not_empty(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("rtp_port_min")
        if low is not None and value < low + 3:
            raise cross_field_error(
                "must be at least media.rtp_port_min + 3 ({low} + 3)",
                related="rtp_port_min",
                low=low,
            )
        return value

    @property
    def media_advertised_host(self) -> str:
        """advertised_host, else host."""
        return self.advertised_host or self.host

    @field_validator("min_application_stream_id")
    @classmethod
    def _above_bootstrap(cls, value: int, info: ValidationInfo) -> int:
        bootstrap = info.data.get("bootstrap_stream_ids")
        if bootstrap and value <= max(bootstrap):
            raise cross_field_error(
                "must be greater than every media.bootstrap_stream_ids entry (largest {largest})",
                related="bootstrap_stream_ids",
                largest=max(bootstrap),
            )
        return value


class StorageConfig(Section):
    """``[storage]``: where the MF keeps state on disk."""

    path: DirectoryPath = Path("var/storage")
    """Root directory for persistent state (avatars, DTLS certificate). A relative path is
    relative to the working directory of the process."""

    max_avatar_size: StrictInt = Field(default=64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest base avatar container accepted (import, upload), in bytes."""

    cache_bytes: StrictInt = Field(default=256 * 1024 * 1024, ge=0)
    """Avatar cache size in bytes (loaded once per room, delivered to every UE)."""

    cache_entries: StrictInt = Field(default=1024, ge=1)
    """Most avatars kept in the cache."""

    cache_ttl: StrictFloat = Field(default=600.0, gt=0)
    """Seconds an avatar stays cached after it was loaded."""

    grant_recheck_interval: StrictFloat = Field(default=10.0, gt=0, le=3600)
    """Seconds between re-checks of the grant an avatar in use in a call rests on (TS 22.156:
    the right holds for the whole call). A grant revoked in the store (avatar-mf avatar
    revoke) stops the avatar within this time; an expiring grant stops it at its expiry."""


class LogConfig(Section):
    """``[log]``: logging."""

    level: LevelName = "INFO"
    """Level for every logger not listed in modules: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    format: Literal["auto", "json", "text"] = "auto"
    """Log line format on stderr: "json" (one JSON object per line, for collectors), "text"
    (for people), or "auto": text when stderr is a terminal, JSON otherwise (a service
    manager, a container, a pipe)."""

    modules: Mapping[LoggerName, LevelName] = Field(default_factory=dict)
    """Per-logger level overrides, e.g. { "avatar_mf.sip" = "DEBUG" }. A level here may be
    lower than level."""

    cdr_file: Path | None = None
    """Call-detail records: one JSON line per call, appended to this file (opened again on
    SIGHUP, for logrotate). Unset: each record is a log line of the avatar_mf.cdr logger."""


class AdminConfig(Section):
    """``[admin]``: the HTTP listener for /healthz, /readyz, /stats, /metrics and /sessions
    (never the SIP port)."""

    enabled: StrictBool = True
    """Run the admin HTTP listener."""

    host: Host = "127.0.0.1"
    """Address the admin listener binds to. Only /sessions is authenticated (admin.token): keep
    the listener on loopback or a management network."""

    port: StrictInt = Field(default=8080, ge=0, le=65535)
    """Admin listener TCP port; 0 picks a free port (logged at start-up)."""

    token: AdminToken | None = None
    """Bearer token for /sessions (list the calls, end one): clients send "Authorization:
    Bearer <token>". Unset: /sessions answers 403. Use a long random value (e.g. from
    `python -c "import secrets; print(secrets.token_urlsafe(32))"`), preferably through
    AVATAR_MF_ADMIN__TOKEN rather than a config file."""

    web_client: StrictBool = False
    """Serve the browser avatar client at /client/ on this listener (docs/browser.md): a page
    that calls a room over SIP/WebSocket (list ws or wss in sip.transports) and runs the data
    channel application. For labs."""


class LifecycleConfig(Section):
    """``[lifecycle]``: how the process stops."""

    drain_timeout: StrictFloat = Field(default=30.0, ge=0, le=86400)
    """Seconds SIGTERM lets calls in progress continue (new INVITEs and OPTIONS get 503 with
    Retry-After) before the rest are ended with BYE and the process exits."""

    sigint_drain_timeout: StrictFloat = Field(default=2.0, ge=0, le=86400)
    """The same for SIGINT (Ctrl-C): a short drain. A second signal exits at once."""


class BootstrapConfig(Section):
    """``[bootstrap]``: the bootstrap data channels (subprotocol "http", 3GPP TS 26.114
    6.2.10), over which the UE downloads its data channel application through the MF."""

    app_dir: DirectoryPath | None = None
    """Directory of the data channel application served on bootstrap channels (index.html and
    its assets). Read into memory once at start-up: restart to publish changes. Unset: the
    avatar call application shipped with the MF."""

    replace_http_url: HttpBaseUrl | None = None
    """Replacement HTTP URL (replaceHttpUrl, 3GPP TS 29.176): when set, every request on a
    bootstrap channel is forwarded to this http:// or https:// base URL (request path appended)
    instead of being served from app_dir. A value without a scheme is taken as http://."""

    max_request_size: StrictInt = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    """Largest HTTP request accepted on a bootstrap channel, head and content, in bytes; larger
    ones are answered 413 (a head over 16 KiB: 431)."""

    max_response_size: StrictInt = Field(default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest response body, in bytes: a larger upstream response (replace_http_url) is
    answered 502, and a larger file in app_dir stops the MF at start-up."""

    proxy_timeout: StrictFloat = Field(default=10.0, gt=0, le=300)
    """Seconds allowed for a forwarded request (replace_http_url), from connecting to the last
    body byte; past it the UE gets 504."""


class StageSettings(Section):
    """``[pipeline.<kind>]``: which implementation of a stage kind runs, and its options."""

    name: str
    """The implementation, by name in the entry point group avatar_mf.stages.<kind>; a lab
    can install its own and name it here."""

    options: Mapping[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the implementation's factory: any TOML values, checked by the
    stage itself when the node starts."""


class AnimationDataSettings(StageSettings):
    """``[pipeline.animation_data]``: one animation-data stage (``name``), or several at once
    (``names``), each session getting those its hello agreed an input of."""

    names: Annotated[tuple[str, ...], AfterValidator(unique)] = ()
    """Several animation-data stages on this node at once, instead of name: for example
    ["text", "voice", "camera"]. Each session gets the stages that take an input its hello
    agreed (text, voice, video, images; docs/operations.md, "Several animation-data stages").
    With names, options holds one table per listed stage ([pipeline.animation_data.options.camera])
    and name must be empty or one of names. A listed stage that cannot be built is logged and
    left out."""

    @field_validator("names")
    @classmethod
    def _one_form(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not value:
            return value
        name = info.data.get("name")
        if name and name not in value:
            raise cross_field_error(
                "names replaces name, so name must be empty or one of names (name = {name})",
                related="name",
                name=json.dumps(name),
            )
        if any(not name for name in value):
            raise custom_error("empty_stage_name", "lists an empty stage name")
        for key, table in (info.data.get("options") or {}).items():
            if key not in value:
                raise cross_field_error(
                    "with names, options holds one table per listed stage: options.{key} names "
                    "no stage of names",
                    related="options",
                    key=key,
                )
            if not isinstance(table, Mapping):
                raise cross_field_error(
                    "with names, options.{key} must be a table of that stage's options",
                    related="options",
                    key=key,
                )
        return value

    def entries(self) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        """(name, options) of every configured stage, in the order configured."""
        if self.names:
            return tuple((name, dict(self.options.get(name) or {})) for name in self.names)
        return ((self.name, self.options),) if self.name else ()


class SceneStageSettings(StageSettings):
    """``[pipeline.scene]``: like every stage table, but a node always runs a scene stage."""

    @field_validator("name")
    @classmethod
    def _not_off(cls, value: str) -> str:
        if not value:
            raise custom_error("scene_off", "must name a scene stage: the scene cannot be off")
        return value


def _stage_table(value: object, info: ValidationInfo) -> object:
    """The stage tables replaced ``[pipeline] <kind> = "name"``: say what to write instead."""
    if isinstance(value, str):
        raise custom_error(
            "stage_table",
            "now a table: write [pipeline.{stage}] name = {name}",
            stage=info.field_name,
            name=json.dumps(value),
        )
    return value


#: A stage table; a string (the old form) gets a problem saying how to write the table.
_Stage = Annotated[StageSettings, BeforeValidator(_stage_table)]


def _single_form(value: object) -> object:
    """A plain :class:`StageSettings` given in code is the single form of the table."""
    if isinstance(value, StageSettings) and not isinstance(value, AnimationDataSettings):
        return {"name": value.name, "options": value.options}
    return value


class PipelineConfig(Section):
    """``[pipeline]``: the avatar pipeline. Each stage kind has a table ``[pipeline.<kind>]``
    naming its implementation (entry point group ``avatar_mf.stages.<kind>``) with
    ``options`` for its factory."""

    rate: StrictFloat = Field(default=30.0, gt=0, le=120)
    """Animation units per second generated by the animation-data stage."""

    workers: StrictInt = Field(default=2, ge=1, le=64)
    """Threads of the bounded executor that runs CPU-heavy stage work."""

    max_pending: StrictInt = Field(default=64, ge=1)
    """Stage jobs that may wait for a worker; past that a request gets a "busy" error."""

    base_avatar: _Stage = StageSettings(name="procedural")
    """Base-avatar generation (D.1 network-centric): "procedural" builds a parametric head
    (option resolution: "low", "default" or "high"). Empty: no generation on this node."""

    animation_data: Annotated[
        AnimationDataSettings, BeforeValidator(_stage_table), BeforeValidator(_single_form)
    ] = AnimationDataSettings(name="text")
    """Animation-data stage (D.3 network-centric): "text" turns text into speech-timed facial
    animation with espeak-ng, "voice" the caller's RTP voice, "camera" its RTP video or
    pictures. Empty: the MF only relays the UEs' own animation."""

    animation: _Stage = StageSettings(name="receiver")
    """Avatar animation stage (D.4): "receiver" forwards animation units for the receiving UE
    to animate. Empty: no animation stage on this node."""

    scene: Annotated[SceneStageSettings, BeforeValidator(_stage_table)] = SceneStageSettings(
        name="gltf"
    )
    """Scene management stage (B, C): "gltf" keeps a glTF-based scene per room. Cannot be
    empty: every node keeps its rooms' scenes."""

    converter: _Stage = StageSettings(name="standard")
    """Format conversion (TR 26.813 section 4): "standard", the default, converts animation
    streams and base avatars per receiver through the common format and applies
    per-audience expression filters (options: groups, policy, cache_entries, cache_bytes); a
    unit no receiver needs converted costs ~2.5 us more (docs/performance.md, Conversion).
    Empty: no conversion on this node (units and avatars delivered as sent)."""

    @model_validator(mode="before")
    @classmethod
    def _default_stage_names(cls, data: Any) -> Any:
        """A stage table without ``name`` (e.g. options only) keeps the default name."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for kind in STAGE_KINDS:
            table = filled.get(kind)
            if isinstance(table, dict) and "name" not in table:
                default = cls.model_fields[kind].default
                # The list form (names) replaces the default name rather than joining it.
                name = "" if table.get("names") else default.name
                filled[kind] = {"name": name, **table}
        return filled


class RenderConfig(Section):
    """``[render]``: the avatar renderer (offscreen OpenGL on EGL in worker processes): the
    defaults of ``avatar-mf avatar render`` and of the network animation stage's pictures."""

    workers: StrictInt = Field(default=0, ge=0, le=64)
    """Render worker processes, each with its own EGL context. 0: one per core."""

    threads: StrictInt = Field(default=1, ge=1, le=64)
    """Rasterizer threads per worker (Mesa llvmpipe's LP_NUM_THREADS). 1 with one worker per
    core keeps rendering to as many cores as there are workers."""

    size: StrictInt = Field(default=512, ge=16, le=4096)
    """Width and height of the rendered picture in pixels (square). An odd value is rounded
    down to even (H.264 4:2:0 needs even sizes)."""

    rate: StrictFloat = Field(default=25.0, ge=1, le=60)
    """Frames per second of rendered video (avatar render to MP4, network animation)."""

    background: StrictInt = Field(default=0x33383F, ge=0, le=0xFFFFFF)
    """Background colour behind the avatar, sRGB as 0xRRGGBB (a TOML hex integer)."""

    alpha: StrictBool = False
    """Transparent background (alpha 0 outside the avatar) in PNG stills."""

    samples: StrictInt = Field(default=0, ge=0, le=8)
    """Multisample anti-aliasing for video frames (0: off; 4 doubles llvmpipe's render time,
    see docs/performance.md). Stills always use 4."""

    relax_after: StrictFloat = Field(default=1.0, ge=0, le=60)
    """Seconds the avatar holds its last pose once animation units stop, before relaxing."""

    relax_time: StrictFloat = Field(default=0.5, gt=0, le=10)
    """Seconds the relaxation back to the neutral face takes."""

    @property
    def background_rgb(self) -> tuple[float, float, float]:
        """The background as three sRGB values 0..1."""
        value = self.background
        return ((value >> 16 & 0xFF) / 255, (value >> 8 & 0xFF) / 255, (value & 0xFF) / 255)

    @property
    def even_size(self) -> int:
        """``size`` rounded down to even."""
        return self.size - self.size % 2


class CallsConfig(Section):
    """``[calls]``: rooms and two-leg calls (the MF as a media-terminating B2BUA, RFC 7092)."""

    room_pattern: str = ".*"
    """Regular expression (Python syntax) matched against the whole user part of an INVITE's
    Request-URI (empty when it has none): a match names a room, which the call joins; any
    other user is called on a second leg through outbound_proxy, both legs sharing one avatar
    session. The default matches every Request-URI: no two-leg calls."""

    outbound_proxy: str | None = None
    """Where second legs are sent, with UE1's Request-URI unchanged: a SIP URI (e.g. the lab
    Kamailio, "sip:127.0.0.1:5070;lr"; add ";transport=tcp" for TCP) or a bare host[:port]
    (UDP). Unset: INVITEs to users that are not rooms are answered 480."""

    no_answer_timeout: StrictFloat = Field(default=120.0, gt=0, le=3600)
    """Seconds a second leg may ring before the MF cancels it and answers UE1 480."""

    @field_validator("room_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise custom_error(
                "config_pattern", "not a regular expression: {error}", error=str(exc)
            ) from None
        return value

    @field_validator("outbound_proxy")
    @classmethod
    def _proxy_is_a_sip_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, colon, rest = value.partition(":")
        if scheme.lower() not in ("sip", "sips"):
            rest = value  # a bare host[:port]
        if not rest or any(c.isspace() or c in '<>"@' for c in rest):
            raise custom_error("config_sip_uri", "must be a sip: or sips: URI, or host[:port]")
        return value

    @property
    def outbound_proxy_uri(self) -> str:
        """outbound_proxy as a SIP URI ("" when unset)."""
        value = self.outbound_proxy
        if value is None:
            return ""
        if value.partition(":")[0].lower() in ("sip", "sips"):
            return value
        return f"sip:{value}"


#: The stage kinds, in pipeline order: the stage tables of ``[pipeline]``.
STAGE_KINDS = ("base_avatar", "animation_data", "animation", "scene", "converter")


class AppConfig(Section):
    """The whole configuration: one attribute per section, each defaulted."""

    sip: SipConfig = Field(default_factory=SipConfig)
    """SIP listeners, timers and admission control."""

    media: MediaConfig = Field(default_factory=MediaConfig)
    """ICE, DTLS and SCTP."""

    storage: StorageConfig = Field(default_factory=StorageConfig)
    """On-disk state."""

    log: LogConfig = Field(default_factory=LogConfig)
    """Logging."""

    admin: AdminConfig = Field(default_factory=AdminConfig)
    """Admin HTTP listener."""

    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    """Draining and shutdown."""

    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    """Bootstrap data channels: the data channel application and replaceHttpUrl."""

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    """Avatar pipeline stages."""

    calls: CallsConfig = Field(default_factory=CallsConfig)
    """Rooms and two-leg calls."""

    render: RenderConfig = Field(default_factory=RenderConfig)
    """The avatar renderer."""

    @property
    def dtls_certificate_dir(self) -> Path:
        """media.certificate_dir, else <storage.path>/dtls."""
        if self.media.certificate_dir is not None:
            return self.media.certificate_dir
        return self.storage.path / "dtls"


def _section_models() -> dict[str, type[Section]]:
    models: dict[str, type[Section]] = {}
    for name, field in AppConfig.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, Section), name
        models[name] = model
    return models


#: Section name -> model, in AppConfig order (a read-only lookup table).
SECTIONS: Mapping[str, type[Section]] = types.MappingProxyType(_section_models())


def table_model(field: FieldInfo) -> type[Section] | None:
    """The model of a field that is a nested table of settings (a stage table), else None."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    return None


def iter_setting_fields(
    model: type[Section] | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """(path, field) of every setting, in declaration order: ``("sip", "port")``, and for
    nested tables every key inside them, ``("pipeline", "scene", "name")``."""
    if model is None:
        for section, section_model in SECTIONS.items():
            yield from iter_setting_fields(section_model, (section,))
        return
    for key, field in model.model_fields.items():
        nested = table_model(field)
        if nested is None:
            yield (*prefix, key), field
        else:
            yield from iter_setting_fields(nested, (*prefix, key))
