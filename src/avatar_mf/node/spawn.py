"""Every core of a host: one MF node per core behind the operator's proxy, as across hosts.

One MF process runs one asyncio loop, so it uses one core for SIP, DTLS and SCTP (rendering
and inference already run in worker pools). A host with N cores runs N nodes, each on its own
SIP and admin port (consecutive from a base), each with its own storage directory, and the
proxy in front spreads calls over them exactly as over nodes on different hosts
(docs/lab.md, "Every core of a host"): Kamailio's dispatcher hashes the Request-URI user
(``alg 3``, flag 1), so every call to one room reaches the same node.

:func:`plan_nodes` is pure: the ports, storage and environment of each node, the dispatcher
list that names them (:func:`dispatcher_list`, the format of ``docker/kamailio``'s) and the
environment file a systemd template instance reads (:func:`environment_file`,
``configs/systemd/avatar-mf@.service``). :class:`NodeSpawner` starts the nodes as child
processes, waits until each answers ``/readyz``, forwards SIGTERM/SIGINT to them (each drains)
and returns when all have exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

#: The dispatcher set the lab's Kamailio routes calls to (docker/kamailio/kamailio.cfg).
MF_SET = 1


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node of a host: where it listens and what it is started with."""

    index: int
    """1-based: node 1 is on the base ports."""
    host: str
    sip_port: int
    admin_port: int
    storage: Path
    cpu: int | None
    """The core the node is pinned to, or None (the scheduler's choice)."""

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def uri(self) -> str:
        """The node as a dispatcher destination."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.sip_port}"

    def environment(self) -> dict[str, str]:
        """The ``AVATAR_MF_*`` settings that make this node differ from the others."""
        return {
            "AVATAR_MF_SIP__HOST": self.host,
            "AVATAR_MF_SIP__PORT": str(self.sip_port),
            "AVATAR_MF_ADMIN__PORT": str(self.admin_port),
            "AVATAR_MF_STORAGE__PATH": str(self.storage),
        }


def plan_nodes(
    count: int,
    *,
    host: str,
    base_port: int,
    admin_base_port: int,
    storage_root: Path,
    pin: bool = False,
    cpus: Sequence[int] | None = None,
) -> tuple[NodePlan, ...]:
    """``count`` nodes on consecutive SIP ports from ``base_port`` and admin ports from
    ``admin_base_port``, storage under ``storage_root/node<i>``; with ``pin``, node i on the
    i-th of ``cpus`` (round-robin)."""
    if count < 1:
        raise ValueError(f"need at least one node, not {count}")
    sip = range(base_port, base_port + count)
    admin = range(admin_base_port, admin_base_port + count)
    if base_port < 1 or sip[-1] > 65535 or admin_base_port < 1 or admin[-1] > 65535:
        raise ValueError(f"{count} consecutive ports from {base_port} / {admin_base_port}")
    if set(sip) & set(admin):
        raise ValueError("the SIP and admin port ranges overlap")
    cores = list(cpus) if cpus else [0]
    return tuple(
        NodePlan(
            index=i + 1,
            host=host,
            sip_port=sip[i],
            admin_port=admin[i],
            storage=storage_root / f"node{i + 1}",
            cpu=cores[i % len(cores)] if pin else None,
        )
        for i in range(count)
    )


def dispatcher_list(plans: Sequence[NodePlan], set_id: int = MF_SET) -> str:
    """Kamailio's ``dispatcher.list`` for the nodes: set id, URI, flags 8 (probe with OPTIONS
    from the start), priority 0; one line each."""
    lines = ["# set  destination  flags(8 = probe with OPTIONS)  priority"]
    lines += [f"{set_id} {plan.uri} 8 0" for plan in plans]
    return "\n".join(lines) + "\n"


def environment_file(plan: NodePlan) -> str:
    """The ``EnvironmentFile`` of the systemd instance ``avatar-mf@<index>``."""
    lines = [f"# avatar-mf@{plan.index}: written by avatar-mf node plan"]
    lines += [f"{key}={value}" for key, value in plan.environment().items()]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step (a proxy reloading the list never reads half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def ready(plan: NodePlan, timeout: float = 1.0) -> bool:
    """True when the node's ``/readyz`` answers 200."""
    host = f"[{plan.host}]" if ":" in plan.host else plan.host
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    try:
        with urllib.request.urlopen(f"http://{host}:{plan.admin_port}/readyz", timeout=timeout):
            return True
    except (OSError, urllib.error.URLError):
        return False


class NodeSpawner:
    """The nodes of one host as child processes of this one."""

    def __init__(
        self,
        plans: Sequence[NodePlan],
        *,
        config: Path | None,
        environ: Mapping[str, str],
        log: TextIO,
        python: str = sys.executable,
        is_ready: Callable[[NodePlan], bool] = ready,
    ) -> None:
        self.plans = tuple(plans)
        self._config = config
        self._environ = dict(environ)
        self._log = log
        self._python = python
        self._is_ready = is_ready
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, one after the other (each creates its storage and DTLS
        certificate before the next starts); raise RuntimeError if one does not get ready."""
        for plan in self.plans:
            plan.storage.mkdir(parents=True, exist_ok=True)
            argv = [self._python, "-m", "avatar_mf", "serve"]
            if self._config is not None:
                argv += ["--config", str(self._config)]
            env = {**self._environ, **plan.environment()}
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
            self.procs.append(proc)
            if plan.cpu is not None:
                os.sched_setaffinity(proc.pid, {plan.cpu})
            deadline = time.monotonic() + timeout
            while not self._is_ready(plan):
                if proc.poll() is not None:
                    raise RuntimeError(f"{plan.name} exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{plan.name} not ready within {timeout} s")
                time.sleep(0.1)
            cpu = "" if plan.cpu is None else f" cpu {plan.cpu}"
            print(
                f"{plan.name}: {plan.uri} admin {plan.admin_port} pid {proc.pid}{cpu}",
                file=self._log,
                flush=True,
            )

    def signal_all(self, signum: int = signal.SIGTERM) -> None:
        """Forward a signal to every node still running (SIGTERM: each drains)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    def wait(self) -> int:
        """Wait until every node has exited; 0 if all exited 0, else the first other code."""
        codes = [proc.wait() for proc in self.procs]
        return next((c for c in codes if c != 0), 0)
