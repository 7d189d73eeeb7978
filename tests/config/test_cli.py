"""The avatar-mf command line: the real program in a child process, plus in-process checks."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from avatar_mf import __version__
from avatar_mf.cli import CliContext, Command, build_parser, main
from avatar_mf.config import load_config

from .conftest import run_cli

WriteConfig = Callable[..., Path]

THREE_PROBLEMS = """\
# A lab config with three mistakes.
[sip]
port = 70000
transports = ["udp"]

[media]
sctp_prot = 5000
host = "127.0.0.1"

[log]
level = "LOUD"
"""
EXPECTED_PROBLEMS = [
    "configs/bad.toml:3: sip.port: Input should be less than or equal to 65535 (got 70000)",
    "configs/bad.toml:7: media.sctp_prot: unknown setting (did you mean media.sctp_port?)",
    "configs/bad.toml:11: log.level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
    "'CRITICAL' (got \"LOUD\")",
]


@pytest.fixture
def bad_config(write_config: WriteConfig) -> Path:
    return write_config(THREE_PROBLEMS, "configs/bad.toml")


def test_check_config_prints_every_problem_and_exits_1(bad_config: Path, tmp_path: Path) -> None:
    result = run_cli("check-config", "configs/bad.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == EXPECTED_PROBLEMS
    assert result.stderr == ""


def test_serve_with_a_bad_config_exits_2_before_starting(bad_config: Path, tmp_path: Path) -> None:
    result = run_cli("serve", "--config", "configs/bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        *EXPECTED_PROBLEMS,
        "avatar-mf: not starting: 3 configuration problems",
    ]
    assert result.stdout == ""


def test_check_config_reports_toml_syntax_errors_with_line(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    write_config("[sip]\nport = 5060\n\nhost = 127.0.0.1 x\n", "syntax.toml")
    result = run_cli("check-config", "syntax.toml", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert line.startswith("syntax.toml:4: TOML syntax error: ")
    assert "(column " in line


def test_check_config_ok_and_environment_is_applied(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    write_config("[sip]\nport = 5070\n", "good.toml")
    result = run_cli(
        "check-config", "good.toml", "--print", "--format", "json",
        cwd=tmp_path, env={"AVATAR_MF_MEDIA__SCTP_PORT": "5001"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert result.stderr == "good.toml: OK\n"
    printed = json.loads(result.stdout)
    assert printed["sip"]["port"] == 5070
    assert printed["media"]["sctp_port"] == 5001


def test_console_script(tmp_path: Path) -> None:
    """The installed `avatar-mf` entry point, not only `python -m avatar_mf`."""
    script = Path(sys.executable).parent / "avatar-mf"
    if not script.exists():
        pytest.skip("avatar-mf console script not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"avatar-mf {__version__}\n")


# --------------------------------------------------------------------------- in process


def run_main(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ=env or {})
    return code, out.getvalue(), err.getvalue()


def test_check_config_ok(write_config: WriteConfig) -> None:
    path = write_config("[sip]\nport = 5070\n")
    assert run_main("check-config", str(path)) == (0, f"{path}: OK\n", "")


def test_check_config_without_a_file_checks_the_defaults_and_environment() -> None:
    code, out, _ = run_main("check-config")
    assert (code, out) == (0, "avatar_mf:configs/default.toml: OK\n")
    code, out, _ = run_main("check-config", env={"AVATAR_MF_SIP__PORTT": "1"})
    assert code == 1
    assert out.startswith("env AVATAR_MF_SIP__PORTT: sip.portt: unknown variable")


def test_check_config_print_toml_round_trips(write_config: WriteConfig) -> None:
    path = write_config('[log]\nmodules = { "avatar_mf.sip" = "DEBUG" }\n')
    code, out, err = run_main("check-config", str(path), "--print")
    assert (code, err) == (0, f"{path}: OK\n")
    assert tomllib.loads(out)["log"]["modules"] == {"avatar_mf.sip": "DEBUG"}
    assert load_config(write_config(out, "printed.toml"), env={}) == load_config(path, env={})


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_serve_runs_the_server_with_the_loaded_config(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve hands the validated config to the server and returns its exit code."""
    import avatar_mf.cli as cli

    seen = []

    def fake_run_server(config: object, reload: Callable[[], object]) -> int:
        seen.append(config)
        seen.append(reload())  # SIGHUP reads the same sources again
        return 7

    monkeypatch.setattr(cli, "_run_server", fake_run_server)
    path = write_config("[sip]\nport = 5071\n")
    code, _, _ = run_main("serve", "--config", str(path), env={"AVATAR_MF_SIP__HOST": "::1"})
    assert code == 7
    config, reloaded = seen
    assert config == reloaded == load_config(path, env={"AVATAR_MF_SIP__HOST": "::1"})


def test_commands_nest_for_later_subcommands() -> None:
    """The registry takes groups, as `avatar-mf ue call` will need."""
    calls: list[argparse.Namespace] = []

    def call(args: argparse.Namespace, context: CliContext) -> int:
        calls.append(args)
        return 0

    def call_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("uri")

    ue = Command(
        name="ue",
        help="test UE",
        children=(
            Command(name="call", help="place a call", run=call, add_arguments=call_arguments),
        ),
    )
    args = build_parser([ue]).parse_args(["ue", "call", "sip:avatar@mf"])
    assert args.run(args, CliContext(io.StringIO(), io.StringIO(), {})) == 0
    assert calls[0].uri == "sip:avatar@mf"
    with pytest.raises(ValueError):
        Command(name="broken", help="neither run nor children")
