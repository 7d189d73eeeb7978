"""The ``avatar-mf`` command line.

::

    avatar-mf serve [--config FILE] [--log-format auto|json|text] [--log-level LEVEL]
    avatar-mf check-config [FILE] [--print [--format toml|json]] [--no-host-checks]
    avatar-mf sessions [--admin URL] [--token T] [--json]      list the calls in progress
    avatar-mf sessions drop CALL_ID [--admin URL] [--token T]  end one with BYE
    avatar-mf trace on|off|status [--call CALL_ID] [--pcap FILE] [--hep HOST:PORT]
    avatar-mf tls generate-cert --out DIR [--host NAME ...]   a lab certificate (tls, wss)
    avatar-mf node spawn|plan [--nodes N] [--base-port P] ...  one node per core (cli/node.py)
    avatar-mf --version

Subcommands are :class:`Command` values listed in :data:`COMMANDS`. A command either runs
(``run``) or groups further commands (``children``), so ``avatar-mf ue call`` is a ``ue`` group
holding a ``call`` command. To add one, define a ``Command`` (its module imports heavy
dependencies inside ``run``, so that ``--help`` and ``check-config`` stay fast) and append it to
:data:`COMMANDS`; :func:`build_parser` does the rest.

Exit codes: 0 success; 1 ``check-config`` found problems, or ``sessions`` or ``trace``
failed (the admin listener refused or could not be reached); 2 usage error, or ``serve``
refused to start because the configuration is invalid (values or host checks); otherwise what
the server returns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from avatar_mf import __version__
from avatar_mf.cli.base import (
    EXIT_CONFIG_INVALID,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    CliContext,
    Command,
    Runner,
)
from avatar_mf.config import (
    EMBEDDED_DEFAULT_SOURCE,
    AppConfig,
    ConfigError,
    dump_json,
    dump_toml,
    env_var_name,
    load_config,
)

__all__ = [
    "COMMANDS",
    "EXIT_CONFIG_INVALID",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "CliContext",
    "Command",
    "build_parser",
    "main",
]

def _print_problems(error: ConfigError, stream: TextIO) -> None:
    for problem in error.problems:
        print(problem, file=stream)


# --------------------------------------------------------------------------- serve


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration file (default: the built-in defaults, as in "
        "configs/default.toml); AVATAR_MF_<SECTION>__<KEY> variables override it",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        help="log line format on stderr, overriding log.format: auto (text on a terminal, "
        "JSON otherwise), json (one object per line, "
        "for collectors) or text (for people)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="level of every logger not listed in log.modules, overriding log.level",
    )


def _with_log_overrides(config: AppConfig, args: argparse.Namespace) -> AppConfig:
    """``config`` with the log settings given on the command line (they win over the file and
    the environment)."""
    changes: dict[str, object] = {}
    if getattr(args, "log_format", None):
        changes["format"] = args.log_format
    if getattr(args, "log_level", None):
        changes["level"] = args.log_level
    if not changes:
        return config
    return config.model_copy(update={"log": config.log.model_copy(update=changes)})


def _host_problems(config: AppConfig) -> ConfigError | None:
    """What :func:`avatar_mf.node.preflight.preflight` finds on this host, as one error."""
    # Imported here: the stage registry and the bootstrap application are not needed by --help.
    from avatar_mf.node.preflight import preflight

    problems = preflight(config)
    return ConfigError(problems) if problems else None


def _serve(args: argparse.Namespace, context: CliContext) -> int:
    try:
        config = _with_log_overrides(load_config(args.config, context.environ), args)
        host_error = _host_problems(config)
        if host_error is not None:
            raise host_error
    except ConfigError as exc:
        _print_problems(exc, context.stderr)
        count = len(exc.problems)
        print(
            f"avatar-mf: not starting: {count} configuration problem{'s' * (count != 1)}",
            file=context.stderr,
        )
        return EXIT_CONFIG_INVALID

    def reload() -> AppConfig:
        """SIGHUP: the same file, environment and command-line overrides, read again."""
        return _with_log_overrides(load_config(args.config, context.environ), args)

    return _run_server(config, reload)


def _run_server(config: AppConfig, reload: Callable[[], AppConfig] | None = None) -> int:
    # Imported here: the server pulls in aiortc and uvloop, which check-config does not need.
    # run() sets up logging (avatar_mf.logging_setup) and the event loop itself.
    from avatar_mf.node.app import run

    return run(config, reload)


SERVE = Command(
    name="serve",
    help="run the Media Function",
    description="Load the configuration and run the SIP/media server until SIGINT or SIGTERM. "
    "Exits 2 without starting if the configuration has problems.",
    run=_serve,
    add_arguments=_serve_arguments,
)


# --------------------------------------------------------------------------- check-config


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="TOML configuration file (default: the built-in defaults)",
    )
    parser.add_argument(
        "--print",
        dest="print_config",
        action="store_true",
        help="print the effective configuration (file merged with AVATAR_MF_* variables and "
        "defaults) to stdout; the OK line then goes to stderr",
    )
    parser.add_argument(
        "--format",
        choices=("toml", "json"),
        default="toml",
        help="format for --print (default: %(default)s)",
    )
    parser.add_argument(
        "--no-host-checks",
        dest="host_checks",
        action="store_false",
        help="check the values only, not against this host (folders, local addresses, "
        "installed stages): for a configuration meant for another host or a container",
    )


def _check_config(args: argparse.Namespace, context: CliContext) -> int:
    file: Path | None = args.file
    label = EMBEDDED_DEFAULT_SOURCE if file is None else str(file)
    try:
        config = load_config(file, context.environ)
        host_error = _host_problems(config) if args.host_checks else None
        if host_error is not None:
            raise host_error
    except ConfigError as exc:
        _print_problems(exc, context.stdout)
        return EXIT_PROBLEMS
    if args.print_config:
        context.stdout.write(dump_json(config) if args.format == "json" else dump_toml(config))
        print(f"{label}: OK", file=context.stderr)
    else:
        print(f"{label}: OK", file=context.stdout)
    return EXIT_OK


CHECK_CONFIG = Command(
    name="check-config",
    help="validate a configuration file",
    description="Validate a configuration file together with the AVATAR_MF_* environment "
    "variables, as serve would: the values, then this host (folders that must exist or be "
    "creatable, addresses that must be local, stage names an installed package must provide). "
    "Prints every problem, one per line as FILE:LINE: KEY: MESSAGE (host problems as "
    "'host check: KEY: MESSAGE'), and exits 1; prints 'FILE: OK' and exits 0 when there is "
    "none.",
    run=_check_config,
    add_arguments=_check_config_arguments,
)


# --------------------------------------------------------------------------- sessions


class AdminError(Exception):
    """The admin listener could not be asked, or refused; the message says why."""


def _sessions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "drop"),
        default="list",
        help="list the calls in progress (default), or drop one",
    )
    parser.add_argument("call_id", nargs="?", metavar="CALL_ID", help="the call to drop")
    parser.add_argument(
        "--admin",
        metavar="URL",
        help="the node's admin listener (default: http://<admin.host>:<admin.port> of the "
        "configuration, i.e. http://127.0.0.1:8080 unless --config or AVATAR_MF_ADMIN__* "
        "say otherwise)",
    )
    parser.add_argument(
        "--token",
        help=f"bearer token (default: admin.token of the configuration, e.g. from "
        f"{env_var_name('admin', 'token')})",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="the node's configuration file")
    parser.add_argument("--json", action="store_true", help="print the JSON the node answers")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the node (default 5)"
    )


def _admin_target(args: argparse.Namespace, context: CliContext) -> tuple[str, str | None]:
    """(base URL, token) from the options, else from the configuration and environment."""
    url: str | None = args.admin
    token: str | None = args.token
    if url is None or token is None:
        config = load_config(args.config, context.environ)
        if token is None:
            token = config.admin.token
        if url is None:
            host = str(config.admin.host)
            if host in ("0.0.0.0", "::"):
                host = "127.0.0.1" if host == "0.0.0.0" else "::1"
            if ":" in host:
                host = f"[{host}]"
            url = f"http://{host}:{config.admin.port}"
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/"), token


def _admin_request(
    base: str,
    path: str,
    token: str | None,
    *,
    method: str = "GET",
    timeout: float = 5.0,
    body: Mapping[str, object] | None = None,
) -> Any:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        answer = err.read()
        try:
            message = json.loads(answer)["error"]
        except (ValueError, KeyError, TypeError):
            message = answer.decode(errors="replace").strip() or err.reason
        raise AdminError(f"{base}{path}: {err.code}: {message}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise AdminError(f"{base}{path}: {reason}") from err


def _age(seconds: object) -> str:
    value = float(seconds) if isinstance(seconds, int | float) else 0.0
    minutes, secs = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_sessions(sessions: Sequence[Mapping[str, Any]]) -> str:
    """The table ``avatar-mf sessions`` prints."""
    header = ("CALL-ID", "STATE", "FROM", "SOURCE", "AGE", "ROOM", "CHANNELS", "MSGS IN/OUT")
    rows = [header]
    for s in sessions:
        channels = ",".join(
            str(c.get("subprotocol") or c.get("stream_id")) for c in s.get("data_channels", [])
        )
        room = s.get("room") or "-"
        if s.get("participant_id"):
            room = f"{room}/{s['participant_id']}"
        rows.append(
            (
                str(s.get("call_id", "")),
                str(s.get("state", "")),
                str(s.get("identity") or s.get("from") or ""),
                f"{s.get('transport', '')}:{s.get('source', '')}",
                _age(s.get("age_seconds")),
                str(room),
                channels or "-",
                f"{s.get('messages_in', 0)}/{s.get('messages_out', 0)}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    count = len(sessions)
    lines.append(f"{count} call{'s' * (count != 1)}")
    return "\n".join(lines) + "\n"


def _sessions(args: argparse.Namespace, context: CliContext) -> int:
    if args.action == "drop" and not args.call_id:
        print("avatar-mf sessions drop: a CALL_ID is required", file=context.stderr)
        return EXIT_USAGE
    if args.action == "list" and args.call_id:
        print("avatar-mf sessions: CALL_ID only goes with drop", file=context.stderr)
        return EXIT_USAGE
    try:
        base, token = _admin_target(args, context)
    except ConfigError as exc:
        _print_problems(exc, context.stderr)
        return EXIT_CONFIG_INVALID
    try:
        if args.action == "drop":
            path = "/sessions/" + urllib.parse.quote(args.call_id, safe="")
            answer = _admin_request(base, path, token, method="DELETE", timeout=args.timeout)
            if args.json:
                context.stdout.write(json.dumps(answer, indent=2) + "\n")
            else:
                print(f"{args.call_id}: ended (BYE sent)", file=context.stdout)
            return EXIT_OK
        answer = _admin_request(base, "/sessions", token, timeout=args.timeout)
    except AdminError as exc:
        print(f"avatar-mf sessions: {exc}", file=context.stderr)
        return EXIT_PROBLEMS
    if args.json:
        context.stdout.write(json.dumps(answer, indent=2) + "\n")
    else:
        context.stdout.write(format_sessions(answer.get("sessions", [])))
    return EXIT_OK


SESSIONS = Command(
    name="sessions",
    help="list the calls in progress on a node, or end one",
    description="Ask a running node's admin listener (GET /sessions) for its calls and print "
    "them as a table (--json: as the node answers). 'sessions drop CALL_ID' ends that call "
    "with BYE (DELETE /sessions/CALL_ID). Needs the node's admin.token: --token, or the "
    "configuration (--config, AVATAR_MF_ADMIN__TOKEN). Exits 1 if the node refuses or cannot "
    "be reached.",
    run=_sessions,
    add_arguments=_sessions_arguments,
)


# --------------------------------------------------------------------------- trace


def _trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("on", "off", "status"),
        help="on: start tracing (every message, or --call); off: stop (everything, or --call); "
        "status: what is traced",
    )
    parser.add_argument("--call", metavar="CALL_ID", help="only this call's messages")
    parser.add_argument(
        "--pcap",
        metavar="FILE",
        help="also write the messages to this pcap file (written by the node, on its host; "
        "a relative path is relative to the node's working directory; never overwritten)",
    )
    parser.add_argument(
        "--hep", metavar="HOST:PORT", help="also send them as HEP3 to a Homer collector (UDP)"
    )
    _admin_client_arguments(parser)


def _admin_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin",
        metavar="URL",
        help="the node's admin listener (default: http://<admin.host>:<admin.port> of the "
        "configuration)",
    )
    parser.add_argument(
        "--token",
        help=f"bearer token (default: admin.token of the configuration, e.g. from "
        f"{env_var_name('admin', 'token')})",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="the node's configuration file")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the node (default 5)"
    )


def format_trace(status: Mapping[str, Any]) -> str:
    """The line ``avatar-mf trace`` prints."""
    if not status.get("on"):
        return f"SIP trace off ({status.get('messages', 0)} messages traced)\n"
    what = "every message" if status.get("all_calls") else "calls " + ", ".join(
        str(c) for c in status.get("call_ids", [])
    )
    sinks = ["log"]
    if status.get("pcap"):
        sinks.append(f"pcap {status['pcap']}")
    if status.get("hep"):
        sinks.append(f"HEP3 {status['hep']}")
    return f"SIP trace on: {what} -> {', '.join(sinks)} ({status.get('messages', 0)} messages)\n"


def _trace(args: argparse.Namespace, context: CliContext) -> int:
    if args.action != "on" and (args.pcap or args.hep):
        print("avatar-mf trace: --pcap and --hep go with 'on'", file=context.stderr)
        return EXIT_USAGE
    try:
        base, token = _admin_target(args, context)
    except ConfigError as exc:
        _print_problems(exc, context.stderr)
        return EXIT_CONFIG_INVALID
    try:
        if args.action == "on":
            body = {"call_id": args.call, "pcap": args.pcap, "hep": args.hep}
            answer = _admin_request(
                base, "/trace", token, method="POST", timeout=args.timeout,
                body={k: v for k, v in body.items() if v},
            )  # fmt: skip
        elif args.action == "off":
            query = "?call_id=" + urllib.parse.quote(args.call, safe="") if args.call else ""
            answer = _admin_request(
                base, "/trace" + query, token, method="DELETE", timeout=args.timeout
            )
        else:
            answer = _admin_request(base, "/trace", token, timeout=args.timeout)
    except AdminError as exc:
        print(f"avatar-mf trace: {exc}", file=context.stderr)
        return EXIT_PROBLEMS
    context.stdout.write(format_trace(answer))
    return EXIT_OK


TRACE = Command(
    name="trace",
    help="switch a node's SIP message trace on or off",
    description="Switch the SIP message trace of a running node on or off (the admin API's "
    "/trace): log lines with every message, optionally a pcap file and HEP3 to a Homer "
    "collector; for the whole node or one call (--call). Needs the node's admin.token, as "
    "'sessions' does. Exits 1 if the node refuses or cannot be reached.",
    run=_trace,
    add_arguments=_trace_arguments,
)


# --------------------------------------------------------------------------- parser

#: The subcommands of ``avatar-mf``, in ``--help`` order.
def _validate_avatar(data: bytes) -> object:
    # Imported lazily: numpy and the mesh libraries are not needed by the other commands.
    from avatar_mf.avatar.validate import validate_container

    return validate_container(data)


def _avatar_commands() -> Command:
    from avatar_mf.cli.avatar import build_commands

    return build_commands(validator=_validate_avatar)


def _tls_commands() -> Command:
    from avatar_mf.cli.tls import build_commands

    return build_commands()


def _node_commands() -> Command:
    from avatar_mf.cli.node import build_commands

    return build_commands()


def _ue_commands() -> Command:
    # The test UE (avatar_mf.ue) imports aiortc only when a call runs: the parser stays light.
    from avatar_mf.ue import listen_cli
    from avatar_mf.ue.cli import DESCRIPTION, HELP, add_arguments, run

    call = Command("call", HELP, run=run, add_arguments=add_arguments, description=DESCRIPTION)
    listen = Command(
        "listen",
        listen_cli.HELP,
        run=listen_cli.run,
        add_arguments=listen_cli.add_arguments,
        description=listen_cli.DESCRIPTION,
    )
    return Command(
        name="ue",
        help="act as a test UE: place a call to an MF, or register and answer calls",
        children=(call, listen),
    )


COMMANDS: tuple[Command, ...] = (
    SERVE,
    CHECK_CONFIG,
    SESSIONS,
    TRACE,
    _avatar_commands(),
    _tls_commands(),
    _node_commands(),
    _ue_commands(),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser for ``commands``; each leaf stores its runner as ``args.run``."""
    parser = argparse.ArgumentParser(
        prog="avatar-mf",
        description="Media Function for avatar calls over IMS data channels.",
    )
    parser.add_argument("--version", action="version", version=f"avatar-mf {__version__}")
    _add_commands(parser, commands, dest="command")
    return parser


def _add_commands(
    parser: argparse.ArgumentParser, commands: Sequence[Command], *, dest: str
) -> None:
    subparsers = parser.add_subparsers(dest=dest, metavar="COMMAND", required=True)
    for command in commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        if command.add_arguments is not None:
            command.add_arguments(sub)
        if command.children:
            _add_commands(sub, command.children, dest=f"{dest}.{command.name}")
        else:
            sub.set_defaults(run=command.run)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``avatar-mf`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Streams and environment default to the process's own. Usage errors, ``--help`` and
    ``--version`` raise SystemExit from argparse as usual.
    """
    args = build_parser().parse_args(argv)
    context = CliContext(
        stdout=sys.stdout if stdout is None else stdout,
        stderr=sys.stderr if stderr is None else stderr,
        environ=os.environ if environ is None else environ,
    )
    run: Runner = args.run
    return run(args, context)
