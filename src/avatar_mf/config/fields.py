"""Value types of the settings: hosts, addresses, networks, URLs, tokens, with their checks.

Each type is an ``Annotated`` pydantic type whose validator raises an error that reads as a
problem line (``must be an IP address or a host name``); :func:`cross_field_error` marks an
error caused by two settings together, so that the loader can point at the other one's line.
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import annotated_types
from pydantic import AfterValidator, BeforeValidator, Strict
from pydantic_core import PydanticCustomError

__all__ = [
    "AdminToken",
    "DirectoryPath",
    "FilePath",
    "HeaderText",
    "Host",
    "HttpBaseUrl",
    "IPNetwork",
    "LevelName",
    "LogLevelName",
    "LoggerName",
    "MediaAddress",
    "StreamId",
    "Transport",
    "TransportName",
    "WebOrigin",
    "cross_field_error",
    "custom_error",
    "is_wildcard",
    "non_empty",
    "unique",
]

Transport = Literal["udp", "tcp", "tls", "ws", "wss"]
LogLevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_T = TypeVar("_T")


def custom_error(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


def cross_field_error(message: str, *, related: str, **context: Any) -> PydanticCustomError:
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
    raise custom_error("invalid_host", "must be an IP address or a host name")


def _check_media_address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise custom_error("invalid_ip", "must be an IP address literal") from None
    if address.is_unspecified:
        raise custom_error(
            "unspecified_ip",
            "must be a concrete address (it is offered as the ICE host candidate), "
            "not a wildcard such as 0.0.0.0 or ::",
        )
    return value


def _check_header_text(value: str) -> str:
    if not value.strip():
        raise custom_error("empty_text", "must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise custom_error("control_chars", "must not contain control characters")
    return value


def _parse_network(value: object) -> object:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise custom_error("invalid_network", "must be a CIDR string such as '10.0.0.0/8'")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise custom_error(
            "invalid_network", "not a valid IP network: {reason}", reason=str(exc)
        ) from None


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _check_module_name(value: str) -> str:
    if not _MODULE_NAME.fullmatch(value):
        raise custom_error("invalid_logger", "not a logger name such as 'avatar_mf.sip'")
    return value


def _check_non_empty_path(value: Path) -> Path:
    if str(value) in ("", "."):
        raise custom_error("empty_path", "must name a directory")
    return value


def _check_file_path(value: Path) -> Path:
    if str(value) in ("", "."):
        raise custom_error("empty_path", "must name a file")
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
        raise custom_error("invalid_url", "not a valid URL: {reason}", reason=str(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise custom_error("invalid_url", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise custom_error("invalid_url", "must name a host")
    _check_host(parts.hostname)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise custom_error("invalid_url", "must not have a query or a fragment")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        raise custom_error("invalid_url", "must not contain spaces or control characters")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, "", ""))


_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,512}")


def _check_token(value: str) -> str:
    # The RFC 6750 b64token characters: the token goes into an HTTP header as it is.
    if not _TOKEN.fullmatch(value):
        raise custom_error(
            "admin_token",
            "must be 8 to 512 characters from A-Z a-z 0-9 - . _ ~ + / =",
        )
    return value


def _check_origin(value: str) -> str:
    """A WebSocket ``Origin`` as browsers send it (RFC 6454): ``scheme://host[:port]``, kept in
    lower case without the scheme's default port (as browsers send it)."""
    text = value.strip().lower()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise custom_error(
            "invalid_origin", "not a valid origin: {reason}", reason=str(exc)
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise custom_error("invalid_origin", "must be an origin such as https://lab.example:8443")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise custom_error("invalid_origin", "must be scheme://host[:port], without a path")
    default_port = 443 if parts.scheme == "https" else 80
    netloc = parts.netloc.removesuffix(f":{default_port}")
    return f"{parts.scheme}://{netloc}"


def unique(values: tuple[_T, ...]) -> tuple[_T, ...]:
    seen: set[_T] = set()
    for value in values:
        if value in seen:
            raise custom_error("duplicate", "lists {value} more than once", value=str(value))
        seen.add(value)
    return values


def non_empty(values: tuple[_T, ...]) -> tuple[_T, ...]:
    if not values:
        raise custom_error("empty_list", "must not be empty")
    return values


Host = Annotated[str, AfterValidator(_check_host)]
HeaderText = Annotated[str, AfterValidator(_check_header_text)]
MediaAddress = Annotated[str, AfterValidator(_check_media_address)]
TransportName = Annotated[Transport, BeforeValidator(_lower)]
IPNetwork = Annotated[IPv4Network | IPv6Network, BeforeValidator(_parse_network)]
StreamId = Annotated[int, Strict(), annotated_types.Ge(0), annotated_types.Le(65534)]
LevelName = Annotated[LogLevelName, BeforeValidator(_upper)]
LoggerName = Annotated[str, AfterValidator(_check_module_name)]
DirectoryPath = Annotated[Path, AfterValidator(_check_non_empty_path)]
FilePath = Annotated[Path, AfterValidator(_check_file_path)]
HttpBaseUrl = Annotated[str, AfterValidator(_check_http_url)]
AdminToken = Annotated[str, AfterValidator(_check_token)]
WebOrigin = Annotated[str, AfterValidator(_check_origin)]


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is an unspecified address (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
