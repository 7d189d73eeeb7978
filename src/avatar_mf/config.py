"""Configuration: typed settings read from a TOML file, overridden by ``AVATAR_MF_*`` variables.

Every setting lives in a section (``[sip]``, ``[media]``, ``[storage]``, ``[log]``, ``[admin]``,
``[lifecycle]``, ``[bootstrap]``), each a frozen pydantic model that rejects unknown keys.
:func:`load_config` reads a TOML file (or the defaults embedded in the package), applies
environment overrides and validates everything at once: a :class:`ConfigError` lists *every*
problem, each with the key path, the file and line (or the environment variable) it came from,
so that an operator fixes a config file in one pass::

    configs/bad.toml:7: sip.port: Input should be less than or equal to 65535 (got 70000)

Environment overrides are named ``AVATAR_MF_<SECTION>__<KEY>`` (double underscore between section
and key), e.g. ``AVATAR_MF_SIP__PORT=5070``. Lists are given comma-separated (``udp,tcp``) or as a
JSON/TOML array; tables (``log.modules``) as JSON, a TOML inline table or ``name=LEVEL,...``; an
empty value clears an optional setting. An ``AVATAR_MF_`` variable that names no setting is an
error: a typo must not be silently ignored.

Nothing here reads global state: the environment is passed in (the CLI passes ``os.environ``).
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from avatar_mf import __version__

__all__ = [
    "ENV_PREFIX",
    "EMBEDDED_DEFAULT_SOURCE",
    "AdminConfig",
    "AppConfig",
    "BootstrapConfig",
    "ConfigError",
    "ConfigProblem",
    "KeyPath",
    "LifecycleConfig",
    "LogConfig",
    "LogLevelName",
    "MediaConfig",
    "PipelineConfig",
    "SettingInfo",
    "SipConfig",
    "StorageConfig",
    "Transport",
    "dump_json",
    "dump_toml",
    "env_var_name",
    "format_key_path",
    "iter_settings",
    "load_config",
    "toml_key_lines",
]

#: Prefix of every environment override.
ENV_PREFIX = "AVATAR_MF_"
#: The ``source`` of problems found in the defaults embedded in the package.
EMBEDDED_DEFAULT_SOURCE = "avatar_mf:configs/default.toml"

Transport = Literal["udp", "tcp"]
LogLevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: A position in the settings tree: section, key, then list indexes or table keys.
KeyPath = tuple[str | int, ...]

_T = TypeVar("_T")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration."""

    key_path: str
    """Dotted setting path, e.g. ``sip.port`` or ``sip.transports[1]``; empty for file-level
    problems (unreadable file, TOML syntax error, malformed variable name)."""
    message: str
    """What is wrong, including the offending value where there is one."""
    source: str
    """The config file path as given, or ``env AVATAR_MF_SIP__PORT``."""
    line: int | None = None
    """1-based line in ``source`` where the setting is defined, when known."""

    def __str__(self) -> str:
        parts = [self.source if self.line is None else f"{self.source}:{self.line}"]
        if self.key_path:
            parts.append(self.key_path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(Exception):
    """The configuration is unusable; :attr:`problems` lists every reason, in file order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- field types


def _custom_error(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


def _cross_field_error(message: str, *, related: str, **context: Any) -> PydanticCustomError:
    """An error caused by two settings together; ``related`` names the other key of the same
    section, used to point at a line when the failing key itself is not in the file."""
    return PydanticCustomError("config_cross_field", message, {"related": related, **context})


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.removesuffix(".").split(".")
    if (
        len(value) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    ):
        return value
    raise _custom_error("invalid_host", "must be an IP address or a host name")


def _check_media_address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _custom_error("invalid_ip", "must be an IP address literal") from None
    if address.is_unspecified:
        raise _custom_error(
            "unspecified_ip",
            "must be a concrete address (it is offered as the ICE host candidate), "
            "not a wildcard such as 0.0.0.0 or ::",
        )
    return value


def _check_header_text(value: str) -> str:
    if not value.strip():
        raise _custom_error("empty_text", "must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _custom_error("control_chars", "must not contain control characters")
    return value


def _parse_network(value: object) -> object:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise _custom_error("invalid_network", "must be a CIDR string such as '10.0.0.0/8'")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _custom_error(
            "invalid_network", "not a valid IP network: {reason}", reason=str(exc)
        ) from None


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _check_module_name(value: str) -> str:
    if not _MODULE_NAME.fullmatch(value):
        raise _custom_error("invalid_logger", "not a logger name such as 'avatar_mf.sip'")
    return value


def _check_non_empty_path(value: Path) -> Path:
    if str(value) in ("", "."):
        raise _custom_error("empty_path", "must name a directory")
    return value


def _check_http_url(value: str) -> str:
    """An absolute http(s) URL without query or fragment; a bare ``host[:port][/path]`` is
    taken as ``http://``."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise _custom_error("invalid_url", "not a valid URL: {reason}", reason=str(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _custom_error("invalid_url", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise _custom_error("invalid_url", "must name a host")
    _check_host(parts.hostname)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise _custom_error("invalid_url", "must not have a query or a fragment")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        raise _custom_error("invalid_url", "must not contain spaces or control characters")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, "", ""))


_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,512}")


def _check_token(value: str) -> str:
    # The RFC 6750 b64token characters: the token goes into an HTTP header as it is.
    if not _TOKEN.fullmatch(value):
        raise _custom_error(
            "admin_token",
            "must be 8 to 512 characters from A-Z a-z 0-9 - . _ ~ + / =",
        )
    return value


def _unique(values: tuple[_T, ...]) -> tuple[_T, ...]:
    seen: set[_T] = set()
    for value in values:
        if value in seen:
            raise _custom_error("duplicate", "lists {value} more than once", value=str(value))
        seen.add(value)
    return values


def _non_empty(values: tuple[_T, ...]) -> tuple[_T, ...]:
    if not values:
        raise _custom_error("empty_list", "must not be empty")
    return values


Host = Annotated[str, AfterValidator(_check_host)]
HeaderText = Annotated[str, AfterValidator(_check_header_text)]
MediaAddress = Annotated[str, AfterValidator(_check_media_address)]
TransportName = Annotated[Transport, BeforeValidator(_lower)]
IPNetwork = Annotated[IPv4Network | IPv6Network, BeforeValidator(_parse_network)]
StreamId = Annotated[int, annotated_types.Ge(0), annotated_types.Le(65534)]
LevelName = Annotated[LogLevelName, BeforeValidator(_upper)]
LoggerName = Annotated[str, AfterValidator(_check_module_name)]
DirectoryPath = Annotated[Path, AfterValidator(_check_non_empty_path)]
HttpBaseUrl = Annotated[str, AfterValidator(_check_http_url)]
AdminToken = Annotated[str, AfterValidator(_check_token)]


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,  # the attribute docstrings below are the settings' docs
        allow_inf_nan=False,
    )


# --------------------------------------------------------------------------- sections


class SipConfig(_Section):
    """``[sip]``: SIP listeners, transaction timers and admission control (RFC 3261)."""

    host: Host = "127.0.0.1"
    """Address (or host name) the SIP listeners bind to, for every transport. Use 0.0.0.0 or ::
    to listen on all interfaces; then set advertised_host."""

    port: int = Field(default=5060, ge=1, le=65535)
    """SIP port, shared by every transport."""

    transports: Annotated[
        tuple[TransportName, ...], AfterValidator(_non_empty), AfterValidator(_unique)
    ] = ("udp", "tcp")
    """Transports to listen on: "udp" and/or "tcp" ("ws" is planned)."""

    advertised_host: Host | None = Field(default=None, validate_default=True)
    """Address or host name put in Via sent-by and Contact. Unset: host. Required when host is a
    wildcard address, and when the MF is reached through NAT."""

    t1: float = Field(default=0.5, gt=0)
    """RFC 3261 timer T1 in seconds: round-trip time estimate, base of the retransmission
    timers A, E and G and of the 64*T1 transaction timeouts B, F, H and J."""

    t2: float = Field(default=4.0, gt=0, validate_default=True)
    """RFC 3261 timer T2 in seconds: maximum retransmission interval for non-INVITE requests
    and INVITE responses. Must be greater than t1."""

    t4: float = Field(default=5.0, gt=0)
    """RFC 3261 timer T4 in seconds: maximum time a message stays in the network (timers I
    and K)."""

    max_message_size: int = Field(default=65535, ge=1300, le=16 * 1024 * 1024)
    """Largest SIP message accepted, in bytes; larger ones are rejected (513 on TCP) or dropped
    (UDP)."""

    max_dialogs: int = Field(default=10000, ge=1)
    """Maximum concurrent dialogs; new INVITEs beyond it are answered 503 with Retry-After."""

    retry_after: int = Field(default=5, ge=1, le=86400)
    """Seconds put in the Retry-After header of 503 responses sent when overloaded."""

    trusted_peers: Annotated[tuple[IPNetwork, ...], AfterValidator(_non_empty)] = (
        IPv4Network("127.0.0.0/8"),
        IPv6Network("::1/128"),
    )
    """CIDR networks allowed to send requests (e.g. the P-CSCF/IMS core); requests from other
    addresses are answered 403. Use 0.0.0.0/0 and ::/0 to accept any peer."""

    rate_limit_per_source: int = Field(default=2000, ge=0)
    """Sustained SIP packets per second accepted from one source address (token bucket refill
    rate); the excess is dropped unanswered (answering a flood would amplify it). One P-CSCF
    carries every UE's traffic: a call is about 3 requests, so 2000 serves ~650 calls/s.
    0 disables rate limiting."""

    rate_limit_burst: int = Field(default=4000, ge=0)
    """Token bucket size: requests one source may send in a burst above the sustained rate.
    Must be at least 1 when rate limiting is enabled."""

    min_se: int = Field(default=90, ge=90)
    """RFC 4028 Min-SE in seconds: the shortest session interval accepted (422 below it).
    At least 90."""

    session_expires: int = Field(default=1800, ge=90, validate_default=True)
    """RFC 4028 session interval in seconds, requested in Session-Expires; a dialog not
    refreshed in time is released. Must be at least min_se."""

    user_agent: HeaderText = f"avatar-mf/{__version__}"
    """Value of the User-Agent / Server header. Default: avatar-mf/<version>."""

    tcp_idle_timeout: float = Field(default=300.0, gt=0)
    """Seconds after which an idle inbound TCP connection (no dialog, no traffic) is closed."""

    answer_delay: float = Field(default=0.0, ge=0, le=300)
    """Seconds between 100 Trying and the answer to an INVITE ("ring time"). 0 answers at
    once; a lab sets it to test CANCEL before the answer."""

    @field_validator("advertised_host")
    @classmethod
    def _advertised_host_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        host = info.data.get("host")
        if value is None and host is not None and _is_wildcard(host):
            raise _cross_field_error(
                "must be set when sip.host is a wildcard address ({host})",
                related="host",
                host=host,
            )
        return value

    @field_validator("t2")
    @classmethod
    def _t2_above_t1(cls, value: float, info: ValidationInfo) -> float:
        t1 = info.data.get("t1")
        if t1 is not None and value <= t1:
            raise _cross_field_error("must be greater than sip.t1 ({t1})", related="t1", t1=t1)
        return value

    @field_validator("rate_limit_burst")
    @classmethod
    def _burst_when_limited(cls, value: int, info: ValidationInfo) -> int:
        rate = info.data.get("rate_limit_per_source")
        if value == 0 and rate:
            raise _cross_field_error(
                "must be at least 1 when sip.rate_limit_per_source is not 0",
                related="rate_limit_per_source",
            )
        return value

    @field_validator("session_expires")
    @classmethod
    def _session_expires_above_min_se(cls, value: int, info: ValidationInfo) -> int:
        min_se = info.data.get("min_se")
        if min_se is not None and value < min_se:
            raise _cross_field_error(
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


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class MediaConfig(_Section):
    """``[media]``: ICE, DTLS and SCTP for the data channels (RFC 8831, RFC 8841)."""

    host: MediaAddress = "127.0.0.1"
    """IP address offered as the ICE host candidate and used for media sockets. Must be a
    concrete address reachable by the UE, not a wildcard."""

    sctp_port: int = Field(default=5000, ge=1, le=65535)
    """SCTP port announced in a=sctp-port (RFC 8841)."""

    max_message_size: int = Field(default=262144, ge=1)
    """Largest data channel message accepted, in bytes; announced in a=max-message-size
    (RFC 8841)."""

    setup_timeout: float = Field(default=10.0, gt=0)
    """Seconds within which ICE, DTLS and SCTP must all complete after the answer is sent;
    otherwise the call's media is released."""

    # 1160 is aiortc 1.16's USERDATA_MAX_LENGTH: the most that fits the minimum IPv6 MTU
    # (1280) after IP, UDP, DTLS and SCTP headers; the media layer rejects anything larger.
    sctp_max_chunk: int = Field(default=1160, ge=64, le=1160)
    """Largest SCTP DATA chunk user-data payload, in bytes. The default, also the maximum,
    fits the minimum IPv6 MTU after UDP and DTLS overhead; lower it for paths with a smaller
    MTU (e.g. tunnels)."""

    certificate_dir: DirectoryPath | None = None
    """Directory holding the DTLS certificate and key (created there if missing). Unset:
    <storage.path>/dtls."""

    accept_sha1_fingerprint: bool = True
    """Accept a=fingerprint lines using SHA-1 from the UE (some older UEs send only SHA-1).
    SHA-256 and stronger are always accepted."""

    bootstrap_stream_ids: Annotated[tuple[StreamId, ...], AfterValidator(_unique)] = (
        0,
        10,
        100,
        110,
    )
    """SCTP stream ids of the bootstrap data channels (3GPP TS 26.114 section 6.2.10)."""

    min_application_stream_id: int = Field(default=1000, ge=0, le=65534, validate_default=True)
    """Lowest SCTP stream id used for application data channels. Must be above every
    bootstrap stream id."""

    @field_validator("min_application_stream_id")
    @classmethod
    def _above_bootstrap(cls, value: int, info: ValidationInfo) -> int:
        bootstrap = info.data.get("bootstrap_stream_ids")
        if bootstrap and value <= max(bootstrap):
            raise _cross_field_error(
                "must be greater than every media.bootstrap_stream_ids entry (largest {largest})",
                related="bootstrap_stream_ids",
                largest=max(bootstrap),
            )
        return value


class StorageConfig(_Section):
    """``[storage]``: where the MF keeps state on disk."""

    path: DirectoryPath = Path("var/storage")
    """Root directory for persistent state (avatars, DTLS certificate). A relative path is
    relative to the working directory of the process."""

    max_avatar_size: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest base avatar container accepted (import, upload), in bytes."""

    cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    """Avatar cache size in bytes (loaded once per room, delivered to every UE)."""

    cache_entries: int = Field(default=1024, ge=1)
    """Most avatars kept in the cache."""

    cache_ttl: float = Field(default=600.0, gt=0)
    """Seconds an avatar stays cached after it was loaded."""


class LogConfig(_Section):
    """``[log]``: logging."""

    level: LevelName = "INFO"
    """Level for every logger not listed in modules: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    format: Literal["json", "text"] = "json"
    """Log line format on stderr: "json" (one JSON object per line, for collectors) or "text"
    (for people)."""

    modules: Mapping[LoggerName, LevelName] = Field(default_factory=dict)
    """Per-logger level overrides, e.g. { "avatar_mf.sip" = "DEBUG" }. A level here may be
    lower than level."""


class AdminConfig(_Section):
    """``[admin]``: the HTTP listener for /healthz, /readyz, /stats, /metrics and /sessions
    (never the SIP port)."""

    enabled: bool = True
    """Run the admin HTTP listener."""

    host: Host = "127.0.0.1"
    """Address the admin listener binds to. Only /sessions is authenticated (admin.token): keep
    the listener on loopback or a management network."""

    port: int = Field(default=8080, ge=0, le=65535)
    """Admin listener TCP port; 0 picks a free port (logged at start-up)."""

    token: AdminToken | None = None
    """Bearer token for /sessions (list the calls, end one): clients send "Authorization:
    Bearer <token>". Unset: /sessions answers 403. Use a long random value (e.g. from
    `python -c "import secrets; print(secrets.token_urlsafe(32))"`), preferably through
    AVATAR_MF_ADMIN__TOKEN rather than a config file."""


class LifecycleConfig(_Section):
    """``[lifecycle]``: how the process stops."""

    drain_timeout: float = Field(default=30.0, ge=0, le=86400)
    """Seconds SIGTERM lets calls in progress continue (new INVITEs and OPTIONS get 503 with
    Retry-After) before the rest are ended with BYE and the process exits."""

    sigint_drain_timeout: float = Field(default=2.0, ge=0, le=86400)
    """The same for SIGINT (Ctrl-C): a short drain. A second signal exits at once."""


class BootstrapConfig(_Section):
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

    max_request_size: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    """Largest HTTP request accepted on a bootstrap channel, head and content, in bytes; larger
    ones are answered 413 (a head over 16 KiB: 431)."""

    max_response_size: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest response body, in bytes: a larger upstream response (replace_http_url) is
    answered 502, and a larger file in app_dir stops the MF at start-up."""

    proxy_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds allowed for a forwarded request (replace_http_url), from connecting to the last
    body byte; past it the UE gets 504."""


class PipelineConfig(_Section):
    """``[pipeline]``: the avatar pipeline stages, chosen by name (entry point group
    ``avatar_mf.stages.<kind>``; a lab can install its own and name it here)."""

    animation_data: str = "text"
    """Animation-data stage (D.3 network-centric): "text" turns text into speech-timed
    facial animation with espeak-ng. Empty: the MF only relays the UEs' own animation."""

    animation: str = "receiver"
    """Avatar animation stage (D.4): "receiver" forwards animation units for the receiving UE
    to animate."""

    scene: str = "gltf"
    """Scene management stage (B, C): "gltf" keeps a glTF-based scene per room."""

    rate: float = Field(default=30.0, gt=0, le=120)
    """Animation units per second generated by the animation-data stage."""

    workers: int = Field(default=2, ge=1, le=64)
    """Threads of the bounded executor that runs CPU-heavy stage work."""

    max_pending: int = Field(default=64, ge=1)
    """Stage jobs that may wait for a worker; past that a request gets a "busy" error."""


class AppConfig(_Section):
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

    @property
    def dtls_certificate_dir(self) -> Path:
        """media.certificate_dir, else <storage.path>/dtls."""
        if self.media.certificate_dir is not None:
            return self.media.certificate_dir
        return self.storage.path / "dtls"


def _section_models() -> dict[str, type[_Section]]:
    models: dict[str, type[_Section]] = {}
    for name, field in AppConfig.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, _Section), name
        models[name] = model
    return models


#: Section name -> model, in AppConfig order (a read-only lookup table).
_SECTIONS: Mapping[str, type[_Section]] = types.MappingProxyType(_section_models())


# --------------------------------------------------------------------------- settings catalogue


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One setting, for generated documentation and tests."""

    section: str
    key: str
    type_label: str
    """Human-readable type with its bounds, e.g. ``integer, 1..65535``."""
    default: object
    """The default as it would appear in JSON (None when unset by default)."""
    description: str

    @property
    def key_path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env_var(self) -> str:
        return env_var_name(self.section, self.key)


def env_var_name(section: str, key: str) -> str:
    """The environment variable overriding ``section.key``, e.g. ``AVATAR_MF_SIP__PORT``."""
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


def iter_settings() -> Iterator[SettingInfo]:
    """Every setting, section by section, in declaration order."""
    for section, model in _SECTIONS.items():
        defaults = model().model_dump(mode="json")
        for key, field in model.model_fields.items():
            yield SettingInfo(
                section=section,
                key=key,
                type_label=_type_label(field.annotation, field.metadata),
                default=defaults[key],
                description=" ".join((field.description or "").split()),
            )


def _type_label(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type_label(args[0], [*args[1:], *metadata])
    if set(args) == {IPv4Network, IPv6Network}:
        return "CIDR network"
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        label = " or ".join(_type_label(a) for a in inner)
        return f"{label} (optional)" if len(inner) < len(args) else label
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is tuple:
        return f"list of {_type_label(args[0])}"
    if origin in (Mapping, dict):
        return f"table of {_type_label(args[0])} to {_type_label(args[1])}"
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        Path: "path",
    }
    label = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    return f"{label}, {bounds}" if bounds else label


def _bounds(metadata: Sequence[Any]) -> str:
    low: tuple[str, object] | None = None
    high: tuple[str, object] | None = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = (">=", item.ge)
        elif isinstance(item, annotated_types.Gt):
            low = (">", item.gt)
        elif isinstance(item, annotated_types.Le):
            high = ("<=", item.le)
        elif isinstance(item, annotated_types.Lt):
            high = ("<", item.lt)
    if low is not None and high is not None and low[0] == ">=" and high[0] == "<=":
        return f"{low[1]}..{high[1]}"
    return ", ".join(f"{op} {bound}" for op, bound in filter(None, (low, high)))


# --------------------------------------------------------------------------- loading


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read, merge and validate the configuration.

    ``path`` None reads the defaults embedded in the package. ``env`` None reads
    :data:`os.environ`; pass ``{}`` to ignore the environment. ``AVATAR_MF_*`` variables in
    ``env`` override the file. Raises :class:`ConfigError` listing every problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        source = EMBEDDED_DEFAULT_SOURCE
        text = resources.files("avatar_mf").joinpath("configs/default.toml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                [ConfigProblem("", f"cannot read config file: {reason}", source)]
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                [ConfigProblem("", f"config file is not UTF-8 text: {exc.reason}", source)]
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(exc, source, text)]) from None
    return _validate(data, source, toml_key_lines(text), environ)


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _syntax_problem(exc: tomllib.TOMLDecodeError, source: str, text: str) -> ConfigProblem:
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        what = f"{match['what']} (column {match['col']})"
        return ConfigProblem("", f"TOML syntax error: {what}", source, int(match["line"]))
    if message.endswith(" (at end of document)"):
        what = message.removesuffix(" (at end of document)")
        line = text.count("\n") + 1
        return ConfigProblem("", f"TOML syntax error: {what} (at end of file)", source, line)
    return ConfigProblem("", f"TOML syntax error: {message}", source)


def _validate(
    data: dict[str, Any], source: str, lines: Mapping[KeyPath, int], environ: Mapping[str, str]
) -> AppConfig:
    problems: list[ConfigProblem] = []
    merged = copy.deepcopy(data)
    env_sources: dict[tuple[str, str], str] = {}
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        target = _env_target(name)
        if target is None:
            problems.append(_unknown_env_problem(name))
            continue
        section, key = target
        try:
            value = _parse_env_value(environ[name], _SECTIONS[section].model_fields[key].annotation)
        except ValueError as exc:
            problems.append(ConfigProblem(f"{section}.{key}", str(exc), f"env {name}"))
            continue
        table = merged.setdefault(section, {})
        if isinstance(table, dict):  # else: the file's own error for the section is reported
            table[key] = value
            env_sources[(section, key)] = name
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(
            _problem_from_error(error, source, lines, env_sources)
            for error in exc.errors(include_url=False)
        )
    if problems:
        problems.sort(key=_problem_order)
        raise ConfigError(problems)
    return config


def _problem_order(problem: ConfigProblem) -> tuple[bool, int, str, str]:
    from_env = problem.source.startswith("env ")
    line = problem.line if problem.line is not None else 1 << 30
    return (from_env, line, problem.source, problem.key_path)


def _env_target(name: str) -> tuple[str, str] | None:
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    if len(parts) != 2:
        return None
    section, key = parts
    if section not in _SECTIONS or key not in _SECTIONS[section].model_fields:
        return None
    return section, key


def _all_env_names() -> list[str]:
    return [info.env_var for info in iter_settings()]


def _unknown_env_problem(name: str) -> ConfigProblem:
    message = f"unknown variable: {ENV_PREFIX}* variables must name a setting as "
    message += f"{ENV_PREFIX}<SECTION>__<KEY>"
    close = difflib.get_close_matches(name.upper(), _all_env_names(), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]}?)"
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    key_path = ".".join(parts) if len(parts) == 2 and all(parts) else ""
    return ConfigProblem(key_path, message, f"env {name}")


def _annotation_shape(annotation: Any) -> tuple[Literal["scalar", "list", "table"], bool]:
    """(shape, optional) of a field annotation, looking through Annotated and Optional."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args:
            optional = True
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return "scalar", optional
            annotation = inner[0]
        else:
            break
    if origin in (tuple, list):
        return "list", optional
    if origin in (Mapping, dict):
        return "table", optional
    return "scalar", optional


def _parse_env_value(raw: str, annotation: Any) -> object:
    """Turn an environment string into the value the field's validator expects.

    Scalars stay strings (pydantic converts "5070", "true", "0.5"); lists and tables are
    parsed here. Raises ValueError with a message for the operator.
    """
    shape, optional = _annotation_shape(annotation)
    text = raw.strip()
    if optional and text == "":
        return None
    if shape == "list":
        if text.startswith("["):
            return _parse_structured(text, list, "a JSON or TOML array")
        return [] if text == "" else [item.strip() for item in text.split(",")]
    if shape == "table":
        if text.startswith("{"):
            return _parse_structured(text, dict, "a JSON object or TOML inline table")
        table: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(
                    f"expected name=VALUE pairs, a JSON object or a TOML inline table "
                    f"(got {json.dumps(raw)})"
                )
            table[name.strip()] = value.strip()
        return table
    return raw


def _parse_structured(text: str, kind: type, what: str) -> object:
    parsers: list[Callable[[str], object]] = [
        json.loads,
        lambda s: tomllib.loads(f"value = {s}")["value"],
    ]
    for parse in parsers:
        try:
            value = parse(text)
        except ValueError:  # json.JSONDecodeError and tomllib.TOMLDecodeError
            continue
        if isinstance(value, kind):
            return value
    raise ValueError(f"not {what} (got {json.dumps(text)})")


def format_key_path(path: Sequence[str | int]) -> str:
    """``("sip", "transports", 1)`` -> ``sip.transports[1]``; keys that are not bare TOML keys
    are quoted: ``log.modules."avatar_mf.sip"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{name}" if out else name
    return out


def _render_input(value: object) -> str:
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except ValueError:  # circular or otherwise unrenderable
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem_from_error(
    error: Mapping[str, Any],
    file_source: str,
    lines: Mapping[KeyPath, int],
    env_sources: Mapping[tuple[str, str], str],
) -> ConfigProblem:
    loc: KeyPath = tuple(error["loc"])
    if loc and loc[-1] == "[key]":  # pydantic's marker for a bad table key: the key is the input
        loc = loc[:-1]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if error["type"] == "extra_forbidden":
        message = "unknown setting" + _did_you_mean(loc)
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        # A secret is not echoed back (the problem lines end up in logs and terminals).
        if error.get("input") is not None and error["type"] != "admin_token":
            message += f" (got {_render_input(error['input'])})"

    def locate(path: KeyPath) -> tuple[str, int | None] | None:
        if len(path) >= 2 and isinstance(path[0], str) and isinstance(path[1], str):
            env_name = env_sources.get((path[0], path[1]))
            if env_name is not None:
                return f"env {env_name}", None
        if path in lines:
            return file_source, lines[path]
        return None

    related = ctx.get("related")
    candidates = [loc]
    if isinstance(related, str) and loc:
        candidates.append((*loc[:-1], related))
    candidates.extend(loc[:i] for i in range(len(loc) - 1, 0, -1))
    for candidate in candidates:
        found = locate(candidate)
        if found is not None:
            source, line = found
            break
    else:
        source, line = file_source, None
    return ConfigProblem(format_key_path(loc), message, source, line)


def _did_you_mean(loc: KeyPath) -> str:
    if len(loc) == 1:
        choices = list(_SECTIONS)
    elif len(loc) == 2 and loc[0] in _SECTIONS:
        choices = list(_SECTIONS[str(loc[0])].model_fields)
    else:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {format_key_path((*loc[:-1], close[0]))}?)"


# --------------------------------------------------------------------------- TOML line scanner

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _ScanError(Exception):
    pass


class _TomlLineScanner:
    """Finds the line where each key path of a *valid* TOML document is defined.

    tomllib reports no positions, so this walks the text once: table headers (``[a.b]``,
    ``[[a]]``), dotted and quoted keys, ``key = value`` lines, arrays spanning lines (each element
    gets its own path with an int index), inline tables and all four string forms (so that their
    contents are never mistaken for keys). It is good enough for config files, not a TOML parser:
    it assumes tomllib has already accepted the text and stops quietly at anything unexpected.
    """

    def __init__(self, text: str) -> None:
        self._s = text
        self._i = 0
        self._line = 1
        self.lines: dict[KeyPath, int] = {}

    def scan(self) -> dict[KeyPath, int]:
        try:
            self._document()
        except (_ScanError, IndexError):
            pass
        return self.lines

    # --- primitives

    def _peek(self, n: int = 1) -> str:
        return self._s[self._i : self._i + n]

    def _advance(self, n: int = 1) -> None:
        self._line += self._s.count("\n", self._i, self._i + n)
        self._i += n

    def _expect(self, token: str) -> None:
        if self._peek(len(token)) != token:
            raise _ScanError(f"expected {token!r} at line {self._line}")
        self._advance(len(token))

    def _at_end(self) -> bool:
        return self._i >= len(self._s)

    def _skip_inline_space(self) -> None:
        while not self._at_end() and self._s[self._i] in " \t":
            self._i += 1

    def _skip_comment(self) -> None:
        if self._peek() == "#":
            end = self._s.find("\n", self._i)
            self._i = len(self._s) if end < 0 else end

    def _skip_blank(self) -> None:
        """Whitespace, newlines and comments."""
        while not self._at_end():
            c = self._s[self._i]
            if c in " \t\r":
                self._i += 1
            elif c == "\n":
                self._advance()
            elif c == "#":
                self._skip_comment()
            else:
                return

    def _skip_to_line_end(self) -> None:
        self._skip_inline_space()
        self._skip_comment()

    def _record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def _record_prefixes(self, base: KeyPath, key: KeyPath, line: int) -> None:
        for i in range(1, len(key) + 1):
            self._record(base + key[:i], line)

    # --- grammar

    def _document(self) -> None:
        table: KeyPath = ()
        array_tables: dict[KeyPath, int] = {}
        while True:
            self._skip_blank()
            if self._at_end():
                return
            line = self._line
            if self._peek() == "[":
                is_array = self._peek(2) == "[["
                self._advance(2 if is_array else 1)
                self._skip_inline_space()
                key = self._key()
                self._skip_inline_space()
                self._expect("]]" if is_array else "]")
                self._record_prefixes((), key, line)
                if is_array:
                    index = array_tables.get(key, 0)
                    array_tables[key] = index + 1
                    table = (*key, index)
                    self._record(table, line)
                else:
                    table = key
            else:
                key = self._key()
                self._skip_inline_space()
                self._expect("=")
                self._skip_inline_space()
                self._record_prefixes(table, key, line)
                self._value(table + key)
            self._skip_to_line_end()

    def _key(self) -> KeyPath:
        parts: list[str | int] = [self._simple_key()]
        while True:
            self._skip_inline_space()
            if self._peek() != ".":
                return tuple(parts)
            self._advance()
            self._skip_inline_space()
            parts.append(self._simple_key())

    def _simple_key(self) -> str:
        start = self._i
        if self._peek() == '"':
            self._basic_string()
            decoded = tomllib.loads(f"k = {self._s[start : self._i]}")["k"]
            return str(decoded)
        if self._peek() == "'":
            self._literal_string()
            return self._s[start + 1 : self._i - 1]
        match = _BARE_KEY.match(self._s, self._i)
        if not match:
            raise _ScanError(f"expected a key at line {self._line}")
        self._i = match.end()
        return match.group()

    def _value(self, path: KeyPath) -> None:
        c = self._peek()
        if c == "[":
            self._array(path)
        elif c == "{":
            self._inline_table(path)
        elif self._peek(3) == '"""':
            self._multiline_string('"""', escapes=True)
        elif self._peek(3) == "'''":
            self._multiline_string("'''", escapes=False)
        elif c == '"':
            self._basic_string()
        elif c == "'":
            self._literal_string()
        else:  # number, boolean, date-time: runs to a delimiter
            start = self._i
            while not self._at_end() and self._s[self._i] not in ",]}#\n":
                self._i += 1
            if self._i == start:
                raise _ScanError(f"expected a value at line {self._line}")

    def _array(self, path: KeyPath) -> None:
        self._expect("[")
        index = 0
        while True:
            self._skip_blank()
            if self._peek() == "]":
                self._advance()
                return
            if self._at_end():
                raise _ScanError("unterminated array")
            self._record((*path, index), self._line)
            self._value((*path, index))
            self._skip_blank()
            if self._peek() == ",":
                self._advance()
                index += 1
            elif self._peek() != "]":
                raise _ScanError(f"unexpected {self._peek()!r} in array at line {self._line}")

    def _inline_table(self, path: KeyPath) -> None:
        self._expect("{")
        while True:
            self._skip_blank()
            if self._peek() == "}":
                self._advance()
                return
            line = self._line
            key = self._key()
            self._skip_inline_space()
            self._expect("=")
            self._skip_inline_space()
            self._record_prefixes(path, key, line)
            self._value(path + key)
            self._skip_blank()
            if self._peek() == ",":
                self._advance()
            elif self._peek() != "}":
                raise _ScanError(f"unexpected {self._peek()!r} in table at line {self._line}")

    def _basic_string(self) -> None:
        self._expect('"')
        while True:
            c = self._s[self._i]  # IndexError at end of text ends the scan
            if c == "\\":
                self._i += 2
            elif c == '"':
                self._i += 1
                return
            elif c == "\n":
                raise _ScanError(f"newline in string at line {self._line}")
            else:
                self._i += 1

    def _literal_string(self) -> None:
        self._expect("'")
        end = self._s.find("'", self._i)
        if end < 0 or "\n" in self._s[self._i : end]:
            raise _ScanError(f"unterminated string at line {self._line}")
        self._i = end + 1

    def _multiline_string(self, delimiter: str, *, escapes: bool) -> None:
        self._expect(delimiter)
        quote = delimiter[0]
        while True:
            if self._at_end():
                raise _ScanError("unterminated multi-line string")
            if escapes and self._peek() == "\\":
                self._advance(2)
            elif self._peek(3) == delimiter:
                self._advance(3)
                extra = 0  # up to two quotes right before the delimiter belong to the string
                while extra < 2 and self._peek() == quote:
                    self._advance()
                    extra += 1
                return
            else:
                self._advance()


def toml_key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path defined in a TOML document to its 1-based line.

    Table headers map to their header line, dotted keys define each prefix on their line, and
    array elements map to the line where each element starts. Meant for documents tomllib has
    accepted; see :class:`_TomlLineScanner` for what is understood.
    """
    return _TomlLineScanner(text).scan()


# --------------------------------------------------------------------------- dumping


def dump_json(config: AppConfig) -> str:
    """The configuration as indented JSON (unset optional settings as null)."""
    return config.model_dump_json(indent=2) + "\n"


def dump_toml(config: AppConfig) -> str:
    """The configuration as TOML that :func:`load_config` reads back to an equal config.

    Unset optional settings are written as comments (TOML has no null).
    """
    out: list[str] = []
    for section, values in config.model_dump(mode="json").items():
        if out:
            out.append("")
        out.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                out.append(f"# {key} is unset")
            else:
                out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return "\n".join(out) + "\n"


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    escaped = []
    for c in text:
        if c in '"\\':
            escaped.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            escaped.append(f"\\u{ord(c):04x}")
        else:
            escaped.append(c)
    return '"' + "".join(escaped) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} as a setting")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
