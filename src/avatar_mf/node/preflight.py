"""What ``serve`` checks on this host before it starts, and ``check-config`` checks too.

The config models check values on their own (types, ranges, two settings together); some
settings can only be checked against the host: a folder that must exist, a folder the node
must be able to create, an address that must be one of this host's, a stage name that an
installed package must provide. :func:`preflight` checks them all and returns every problem,
as :class:`~avatar_mf.config.ConfigProblem` lines like the models' own. ``avatar-mf serve``
runs it before building the node (and exits 2 on a problem), ``avatar-mf check-config`` runs it
after loading: so check-config rejects whatever serve would.

Nothing here changes the host: folders are not created (their nearest existing parent must be
a writable directory) and addresses are tried by binding a UDP socket to port 0.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path

from avatar_mf.bootstrap.service import AppSource, AppSourceError
from avatar_mf.config import AppConfig, ConfigProblem
from avatar_mf.pipeline import registry

__all__ = ["local_address_problem", "preflight"]

#: Where host problems are said to come from (they concern the values, wherever set).
SOURCE = "host check"


def preflight(config: AppConfig) -> list[ConfigProblem]:
    """Every reason ``config`` cannot be served on this host (empty: it can)."""
    problems: list[ConfigProblem] = []

    def problem(key: str, message: str | None) -> None:
        if message is not None:
            problems.append(ConfigProblem(key, message, SOURCE))

    problem("storage.path", _creatable_dir_problem(config.storage.path))
    if config.media.certificate_dir is not None:
        problem("media.certificate_dir", _creatable_dir_problem(config.media.certificate_dir))
    if config.bootstrap.replace_http_url is None:
        problem("bootstrap.app_dir", _app_problem(config))
    problem("media.host", local_address_problem(str(config.media.host)))
    problem("sip.host", local_address_problem(str(config.sip.host)))
    if config.admin.enabled:
        problem("admin.host", local_address_problem(str(config.admin.host)))
    for kind in registry.KINDS:
        setting = getattr(config.pipeline, kind, None)
        if setting is None:
            continue
        listed = tuple(getattr(setting, "names", ()))  # [pipeline.animation_data] names
        key = f"pipeline.{kind}.names" if listed else f"pipeline.{kind}.name"
        names = registry.available(kind)
        for name in listed or ((setting.name,) if setting.name else ()):
            if name not in names:
                known = ", ".join(sorted(names)) or "none installed"
                problem(
                    key,
                    f"no installed package provides the {kind} stage {name!r} (entry point "
                    f"group {registry.group(kind)}; available: {known})",
                )
    return problems


def _creatable_dir_problem(path: Path) -> str | None:
    """None when ``path`` is a writable directory or can be created as one."""
    target = path if path.is_absolute() else Path.cwd() / path
    if target.exists():
        if not target.is_dir():
            return f"{path} exists and is not a directory"
        if not os.access(target, os.W_OK | os.X_OK):
            return f"directory {path} is not writable by this user"
        return None
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {path}: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable by this user"
    return None


def _app_problem(config: AppConfig) -> str | None:
    app_dir = config.bootstrap.app_dir
    if app_dir is not None and not app_dir.is_dir():
        return f"no such directory: {app_dir}"
    try:
        AppSource.from_config(config.bootstrap)
    except AppSourceError as exc:
        return str(exc)
    return None


def local_address_problem(host: str) -> str | None:
    """None when ``host`` is a wildcard, a host name (resolved when binding) or an address of
    this host; else why it cannot be bound (the node would start and fail every call)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: the listener's bind resolves it and reports its own failure
    if address.is_unspecified:
        return None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{host} is not an address of this host"
        return f"cannot bind {host}: {exc.strerror or exc}"
    return None
