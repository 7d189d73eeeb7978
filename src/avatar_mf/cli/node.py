"""``avatar-mf node ...``: one MF node per core of a host (avatar_mf.node.spawn).

::

    avatar-mf node spawn [--nodes N] [--base-port 5080] [--admin-base-port 8080] [--host H]
                         [--config FILE] [--storage-root DIR] [--dispatcher-list FILE] [--pin]
    avatar-mf node plan  [the same options] [--env-dir DIR]

``spawn`` starts N nodes (default: one per core this process may run on) as its children on
consecutive SIP ports (and admin ports), each with storage in ``DIR/node<i>``, waits until each
is ready, writes the dispatcher list for the proxy, then waits; SIGTERM or Ctrl-C drains every
node, and it exits once all have (0 if all exited 0). ``plan`` writes the same dispatcher list
and, with ``--env-dir``, one ``<i>.env`` per node for the systemd template
``configs/systemd/avatar-mf@.service`` (``systemctl start avatar-mf@1 ... avatar-mf@N``), and
prints the plan. Exit codes: 0 done; 1 a node did not start (the others are stopped); 2 usage.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from avatar_mf.cli.base import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, CliContext, Command
from avatar_mf.node.spawn import (
    NodePlan,
    NodeSpawner,
    dispatcher_list,
    environment_file,
    plan_nodes,
    write_atomically,
)

__all__ = ["build_commands"]


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=int,
        default=len(_cores()),
        metavar="N",
        help="how many nodes (default: one per core this process may use, %(default)s here)",
    )
    parser.add_argument(
        "--base-port", type=int, default=5080, help="SIP port of node 1, +1 each (default 5080)"
    )
    parser.add_argument(
        "--admin-base-port",
        type=int,
        default=8080,
        help="admin port of node 1, +1 each (default 8080)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address every node listens on (sip.host)"
    )
    parser.add_argument("--config", type=Path, help="the config file every node reads")
    parser.add_argument(
        "--storage-root",
        type=Path,
        default=Path("var/nodes"),
        help="node i keeps its storage in DIR/node<i> (default var/nodes)",
    )
    parser.add_argument(
        "--dispatcher-list",
        type=Path,
        metavar="FILE",
        help="write Kamailio's dispatcher list for the nodes here (then: kamcmd dispatcher.reload)",
    )
    parser.add_argument("--pin", action="store_true", help="pin node i to the i-th core")


def _plans(args: argparse.Namespace, context: CliContext) -> tuple[NodePlan, ...] | None:
    try:
        return plan_nodes(
            args.nodes,
            host=args.host,
            base_port=args.base_port,
            admin_base_port=args.admin_base_port,
            storage_root=args.storage_root.resolve(),
            pin=args.pin,
            cpus=_cores(),
        )
    except ValueError as exc:
        print(f"avatar-mf node: {exc}", file=context.stderr)
        return None


def _plan(args: argparse.Namespace, context: CliContext) -> int:
    nodes = _plans(args, context)
    if nodes is None:
        return EXIT_USAGE
    if args.dispatcher_list is not None:
        write_atomically(args.dispatcher_list, dispatcher_list(nodes))
    if args.env_dir is not None:
        for plan in nodes:
            write_atomically(args.env_dir / f"{plan.index}.env", environment_file(plan))
    for plan in nodes:
        print(
            f"{plan.name}: {plan.uri} admin {plan.admin_port} storage {plan.storage}",
            file=context.stdout,
        )
    return EXIT_OK


def _spawn(args: argparse.Namespace, context: CliContext) -> int:
    nodes = _plans(args, context)
    if nodes is None:
        return EXIT_USAGE
    spawner = NodeSpawner(nodes, config=args.config, environ=context.environ, log=context.stdout)
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        spawner.signal_all(signal.SIGTERM)  # each node drains, then exits

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            spawner.start()
        except RuntimeError as exc:
            print(f"avatar-mf node spawn: {exc}", file=context.stderr)
            spawner.signal_all(signal.SIGTERM)
            spawner.wait()
            return EXIT_PROBLEMS
        if stopping:  # a signal came while the nodes were starting
            spawner.signal_all(signal.SIGTERM)
        if args.dispatcher_list is not None:
            write_atomically(args.dispatcher_list, dispatcher_list(nodes))
            print(f"dispatcher list: {args.dispatcher_list}", file=context.stdout, flush=True)
        return spawner.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    _arguments(parser)
    parser.add_argument(
        "--env-dir",
        type=Path,
        metavar="DIR",
        help="write DIR/<i>.env for the systemd instance avatar-mf@<i> (e.g. /etc/avatar-mf/nodes)",
    )


def build_commands() -> Command:
    spawn = Command(
        "spawn",
        "start one node per core on consecutive ports, write the dispatcher list, wait",
        run=_spawn,
        add_arguments=_arguments,
    )
    plan = Command(
        "plan",
        "write the dispatcher list (and systemd environment files) for one node per core",
        run=_plan,
        add_arguments=_plan_arguments,
    )
    return Command("node", "several MF nodes on one host", children=(spawn, plan))
