"""``make lab``: the IMS lab topology on this machine, without Docker, until Ctrl-C.

::

    python -m avatar_mf.testing.lab [--proxy-port 5070] [--ports 5080,5081] [--workdir var/lab]

Starts one MF node per SIP port (127.0.0.1, UDP and TCP; admin on 8080, 8081, ...) and a
Kamailio in front of them on 127.0.0.1:5070 (:mod:`avatar_mf.testing.kamailio`: registrar,
dispatcher on a hash of the Request-URI user so that a room stays on one node, OPTIONS probes
every second, failover, record-routing, the MF's second legs to the registered Contact), prints
how to register test UEs and call between them (``avatar-mf ue listen`` / ``ue call
--register``) and how to place calls with SIPp, and waits. Ctrl-C (or SIGTERM) stops
everything: the nodes drain briefly, then Kamailio stops. Logs and state go under
``--workdir``.

Two-leg calls: the nodes run with :func:`two_leg_settings`: users matching ``room.*`` are
rooms, a call to any other user (``sip:ue2@127.0.0.1:5070``) is placed on a second leg through
the proxy (``calls.outbound_proxy``), which delivers it to the user's registered Contact.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from avatar_mf.testing.kamailio import KamailioError, KamailioProxy, find_kamailio
from avatar_mf.testing.process import MfProcess

HOST = "127.0.0.1"

#: Settings of every lab node, on top of the embedded defaults (``AVATAR_MF_*`` names without
#: the prefix). SIPp does no DTLS: the MF ends its calls with BYE after media.setup_timeout.
LAB_SETTINGS: Mapping[str, str] = {
    "LOG__LEVEL": "INFO",
    "LOG__FORMAT": "text",
    "MEDIA__SETUP_TIMEOUT": "10",
    "LIFECYCLE__DRAIN_TIMEOUT": "10",
}


#: Request-URI users that name rooms in the lab; every other user is a person, called on a
#: second leg through the proxy.
ROOM_PATTERN = "room.*"


def two_leg_settings(proxy: str, transport: str = "udp") -> dict[str, str]:
    """The node settings for two-leg calls through ``proxy`` (``host:port``, over
    ``transport``): rooms are the users matching :data:`ROOM_PATTERN`, second legs go to the
    proxy (``calls.room_pattern``, ``calls.outbound_proxy``)."""
    uri = f"sip:{proxy};lr" if transport == "udp" else f"sip:{proxy};transport={transport};lr"
    return {"CALLS__ROOM_PATTERN": ROOM_PATTERN, "CALLS__OUTBOUND_PROXY": uri}


def start_node(
    workdir: Path,
    sip_port: int,
    admin_port: int,
    settings: Mapping[str, str],
    *,
    timeout: float = 20.0,
) -> MfProcess:
    """Start ``avatar-mf serve`` on fixed SIP and admin ports; wait until ``/readyz`` is 200.

    (:meth:`MfProcess.start` picks free ports; a lab wants ports it can print in advance.)
    """
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = {
        "STORAGE__PATH": str(workdir / "storage"),
        **settings,
        "SIP__HOST": HOST,
        "SIP__PORT": str(sip_port),
        "ADMIN__HOST": HOST,
        "ADMIN__PORT": str(admin_port),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
    env.update({f"AVATAR_MF_{key}": value for key, value in overrides.items()})
    log_path = workdir / "mf.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avatar_mf", "serve"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the lab, which stops the node itself
        )
    node = MfProcess(proc, sip_port, admin_port, workdir, log_path, env=overrides)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MF exited with {proc.returncode}:\n{node.log_text()[-2000:]}")
        try:
            if node.http_get("/readyz", timeout=1.0)[0] == 200:
                return node
        except OSError:
            pass
        time.sleep(0.1)
    node.kill()
    raise RuntimeError(f"MF not ready within {timeout} s:\n{node.log_text()[-2000:]}")


def _parse_ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ports: {text}") from None
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be 1..65535: {text}")
    return ports


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _instructions(proxy: KamailioProxy, nodes: Sequence[MfProcess]) -> str:
    scenario = Path("docker/sipp/uac_call.xml")
    at = proxy.address
    lines = [
        "",
        f"avatar_mf lab: Kamailio (registrar and proxy) on {at} (UDP and TCP) in front of "
        f"{len(nodes)} MF nodes",
    ]
    for i, node in enumerate(nodes, 1):
        lines.append(
            f"  MF node {i}: sip {HOST}:{node.sip_port}  pid {node.proc.pid}  "
            f"stats http://{HOST}:{node.admin_port}/stats  log {_relative(node.log_path)}"
        )
    lines += [
        f"  proxy: pid {proxy.proc.pid}  log {_relative(proxy.log_path)}",
        f"  node states: kamcmd -s {proxy.ctl_socket} dispatcher.list   (AP active, IP inactive)",
        f"  registrations: kamcmd -s {proxy.ctl_socket} ul.dump",
        "",
        "Two registered test UEs (one terminal each; the proxy is their registrar):",
        f"  avatar-mf ue listen --registrar {at} --user ue2 --calls 0 --duration 30 --hello",
        f"  avatar-mf ue call sip:ue2@{at} --register ue1 --no-ice --hello --say 'Hello' "
        "--duration 5",
        f"  (a two-leg call: UE1 - MF - UE2; users matching {ROOM_PATTERN!r} are rooms)",
        "Every UE calling one room meets on one node (the proxy hashes the room's name):",
        f"  avatar-mf ue call sip:room1@{at} --register alice --no-ice --hello --duration 30",
        "",
        "Place 10 calls through the proxy (SIPp, 1 s each, room1..room10 over the nodes):",
        f"  sipp -sf {scenario} -m 10 -r 2 -d 1000 -i {HOST} -p 5090 {proxy.address}",
        "  (add -t t1 for TCP; docs/lab.md has more)",
        "Drain a node: kill -TERM <its pid>  (OPTIONS 503, the proxy stops sending it calls)",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m avatar_mf.testing.lab",
        description="Run MF nodes behind a Kamailio proxy on loopback until Ctrl-C.",
    )
    parser.add_argument("--proxy-port", type=int, default=5070, help="Kamailio SIP port")
    parser.add_argument(
        "--ports", type=_parse_ports, default=[5080, 5081], help="MF SIP ports (comma-separated)"
    )
    parser.add_argument(
        "--admin-port", type=int, default=8080, help="admin port of the first node (+1 each)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("var/lab"))
    args = parser.parse_args(argv)

    if find_kamailio() is None:
        print(
            "kamailio is not installed: install the Debian package kamailio (make sysdeps)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _sig, _frame: stop.set())

    workdir: Path = args.workdir.resolve()
    nodes: list[MfProcess] = []
    proxy: KamailioProxy | None = None
    settings = {**LAB_SETTINGS, **two_leg_settings(f"{HOST}:{args.proxy_port}")}
    try:
        for i, port in enumerate(args.ports):
            nodes.append(start_node(workdir / f"mf{i + 1}", port, args.admin_port + i, settings))
        proxy = KamailioProxy.start(
            workdir / "kamailio",
            [f"{HOST}:{port}" for port in args.ports],
            port=args.proxy_port,
            children=4,
        )
        print(_instructions(proxy, nodes), flush=True)
        exited: set[int] = set()
        while not stop.wait(1.0):
            for i, node in enumerate(nodes, 1):
                if i not in exited and node.proc.poll() is not None:
                    exited.add(i)
                    print(f"MF node {i} exited with {node.proc.returncode}", flush=True)
        return 0
    except (RuntimeError, KamailioError, OSError) as exc:
        print(f"lab could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping the lab ...", flush=True)
        for node in nodes:
            node.stop(signal.SIGINT)  # the short drain (lifecycle.sigint_drain_timeout)
        if proxy is not None:
            proxy.stop()


if __name__ == "__main__":
    sys.exit(main())
