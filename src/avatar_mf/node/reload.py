"""SIGHUP: which changed settings a running node takes at once, and which need a restart.

:func:`plan_reload` compares the running configuration with one just read from the same
sources (the same file, the same environment, the same command-line overrides) and sorts every
changed setting into ``live`` (applied by :meth:`MediaFunction.reconfigure
<avatar_mf.node.app.MediaFunction.reconfigure>`) or ``restart``. Pure: no I/O, no node.

Applied live (:data:`LIVE_SETTINGS`):

* ``[log]``: levels, per-logger levels, format; the CDR file is opened again (logrotate).
* ``sip.trusted_peers``, ``sip.asserted_identity_peers`` and the per-source rate limits
  (messages and bytes; the buckets start full again).
* ``sip.tls_certificate`` and ``sip.tls_private_key``: the tls and wss listeners' certificate
  is loaded again on every SIGHUP (a renewal usually keeps the paths), checked first; new
  handshakes present it, connections up keep theirs.
* The call limits the user agent reads per call: ``sip.max_dialogs``, ``sip.retry_after``,
  ``sip.session_expires``, ``sip.min_se``, ``sip.answer_delay`` (calls in progress keep what
  they negotiated).
* ``admin.token``; ``lifecycle.*`` (read when the stop signal comes).
* Every ``[pipeline.<kind>]`` table (name and options): the stages are built again, and
  sessions that start afterwards open the new ones; sessions in progress keep theirs. If a
  stage cannot be built, nothing is applied.

Everything else (listeners, ports, timers, media, storage, bootstrap application, the
executor) is only read at start-up: it is logged as needing a restart and the running value
stays. DTLS (the data channels) keeps the certificate made at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from avatar_mf.config import AppConfig, format_key_path
from avatar_mf.config.sections import iter_setting_fields

__all__ = ["LIVE_SETTINGS", "ReloadPlan", "changed_settings", "plan_reload", "with_live"]

#: Settings (a key path, or a prefix ending in ".") applied to a running node.
LIVE_SETTINGS: tuple[str, ...] = (
    "log.",
    "sip.trusted_peers",
    "sip.asserted_identity_peers",
    "sip.rate_limit_per_source",
    "sip.rate_limit_burst",
    "sip.rate_limit_bytes_per_source",
    "sip.tls_certificate",
    "sip.tls_private_key",
    "sip.max_dialogs",
    "sip.retry_after",
    "sip.session_expires",
    "sip.min_se",
    "sip.answer_delay",
    "admin.token",
    "lifecycle.",
    "pipeline.base_avatar.",
    "pipeline.animation_data.",
    "pipeline.animation.",
    "pipeline.scene.",
    "pipeline.converter.",
)

#: Settings whose values are never written to a log line.
SECRET_SETTINGS = frozenset({"admin.token"})


def is_live(key_path: str) -> bool:
    return any(
        key_path.startswith(live) if live.endswith(".") else key_path == live
        for live in LIVE_SETTINGS
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One setting that differs: its key path and both values (as the log shows them)."""

    key_path: str
    old: object
    new: object

    def __str__(self) -> str:
        if self.key_path in SECRET_SETTINGS:
            return f"{self.key_path} (changed)"
        return f"{self.key_path}: {_show(self.old)} -> {_show(self.new)}"


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The changed settings, sorted by whether the running node can take them."""

    live: tuple[Change, ...]
    restart: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.live and not self.restart

    def touches(self, prefix: str) -> bool:
        """Whether a live change's key path starts with ``prefix``."""
        return any(c.key_path.startswith(prefix) for c in self.live)


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    return "unset" if value is None else str(value)


def _value(config: AppConfig, path: tuple[str, ...]) -> Any:
    value: Any = config
    for part in path:
        value = getattr(value, part)
    return value


def changed_settings(old: AppConfig, new: AppConfig) -> list[Change]:
    """Every setting whose value differs, in declaration order."""
    return [
        Change(format_key_path(path), _value(old, path), _value(new, path))
        for path, _field in iter_setting_fields()
        if _value(old, path) != _value(new, path)
    ]


def plan_reload(old: AppConfig, new: AppConfig) -> ReloadPlan:
    changes = changed_settings(old, new)
    return ReloadPlan(
        live=tuple(c for c in changes if is_live(c.key_path)),
        restart=tuple(c for c in changes if not is_live(c.key_path)),
    )


def with_live(running: AppConfig, new: AppConfig, live: Iterable[Change]) -> AppConfig:
    """``running`` with the live settings taken from ``new``: what the node runs after a
    reload (settings that need a restart keep their running value, and are reported again by
    the next reload until the node restarts)."""
    keys: dict[str, set[str]] = {}
    for change in live:
        section, key = change.key_path.split(".")[:2]
        keys.setdefault(section, set()).add(key.split("[")[0])
    update: dict[str, Any] = {}
    for section, names in keys.items():
        current = getattr(running, section)
        fresh = getattr(new, section)
        update[section] = current.model_copy(update={n: getattr(fresh, n) for n in names})
    return running.model_copy(update=update)
