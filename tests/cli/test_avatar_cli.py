"""The ``avatar`` command group, in process and in a child process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avatar_mf.cli import CliContext, build_parser
from avatar_mf.cli.avatar import build_commands, parse_duration, parse_time
from avatar_mf.storage import FilesystemStore
from avatar_mf.storage.model import Validator
from tests.storage.conftest import ALICE, BOB, CAROL

CONTAINER = b"PK\x03\x04 a base avatar"


class Cli:
    """Runs ``avatar-mf avatar ...`` in process with the store under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.storage = tmp_path / "storage"
        self.env = {"AVATAR_MF_STORAGE__PATH": str(self.storage)}
        self.validator: Validator | None = None
        self.max_avatar_size = 1024 * 1024

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        commands = build_commands(validator=self.validator, max_avatar_size=self.max_avatar_size)
        args = build_parser([commands]).parse_args(["avatar", *argv])
        out, err = io.StringIO(), io.StringIO()
        code: int = args.run(args, CliContext(stdout=out, stderr=err, environ=self.env))
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert (code, err) == (0, ""), err
        return out


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def container(tmp_path: Path) -> Path:
    path = tmp_path / "alice.arf"
    path.write_bytes(CONTAINER)
    return path


def test_import_list_show(cli: Cli, container: Path) -> None:
    avatar_id = cli.ok(
        "import", str(container), "--owner", "SIP:alice@IMS.example", "--meta", "style=cartoon"
    ).strip()
    assert (cli.storage / "avatars" / "records" / f"{avatar_id}.json").is_file()
    table = cli.ok("list").splitlines()
    assert table[0].split() == ["AVATAR", "ID", "OWNER", "SIZE", "CREATED", "NAME"]
    assert table[1].split()[:3] == [avatar_id, ALICE, str(len(CONTAINER))]
    assert table[1].endswith("alice.arf")
    [listed] = json.loads(cli.ok("list", "--json", "--owner", ALICE))
    assert listed["avatar_id"] == avatar_id and listed["metadata"] == {"style": "cartoon"}
    assert json.loads(cli.ok("list", "--json", "--owner", BOB)) == []
    shown = cli.ok("show", avatar_id)
    assert f"avatar_id:    {avatar_id}" in shown and "grants:       none" in shown
    assert "metadata:     style=cartoon" in shown


def test_grant_show_revoke_prune(cli: Cli, container: Path) -> None:
    avatar_id = cli.ok("import", str(container), "--owner", ALICE, "--name", "Alice").strip()
    grant_id = cli.ok(
        "grant",
        avatar_id,
        "--to",
        BOB,
        "--by",
        ALICE,
        "--for",
        "1h",
        "--allow-party",
        ALICE,
        "--allow-party",
        CAROL,
        "--delegate",
    ).strip()
    shown = json.loads(cli.ok("show", avatar_id, "--json"))
    [grant] = shown["grants"]
    assert grant["grant_id"] == grant_id and grant["state"] == "active"
    assert grant["allow_parties"] == [ALICE, CAROL] and grant["may_delegate"]
    expires = parse_time(grant["expires"])
    assert abs(expires - (time.time() + 3600)) < 60
    delegated = cli.ok(
        "grant", avatar_id, "--to", CAROL, "--by", BOB, "--expires", grant["expires"]
    ).strip()
    text = cli.ok("show", avatar_id)
    assert f"delegated under {grant_id}" in text and "parties: " + ALICE in text
    assert cli.ok("revoke", grant_id) == f"revoked {grant_id}\n"
    states = {
        g["grant_id"]: g["state"] for g in json.loads(cli.ok("show", avatar_id, "--json"))["grants"]
    }
    assert states == {grant_id: "revoked", delegated: "active"}  # its own state...
    assert f"{delegated}  grant-revoked: delegating grant {grant_id}" in cli.ok("show", avatar_id)
    usable = [g["usable"] for g in json.loads(cli.ok("show", avatar_id, "--json"))["grants"]]
    assert usable == [False, False]  # ...but its chain is broken
    assert cli.ok("prune") == "pruned 2 grants\n"  # the child goes with its revoked parent
    assert json.loads(cli.ok("show", avatar_id, "--json"))["grants"] == []


def test_grant_refused(cli: Cli, container: Path) -> None:
    avatar_id = cli.ok("import", str(container), "--owner", ALICE).strip()
    code, out, err = cli("grant", avatar_id, "--to", CAROL, "--by", BOB, "--for", "60")
    assert (code, out) == (1, "")
    assert err.startswith("avatar-mf avatar grant: sip:bob@ims.example neither owns")
    code, _, err = cli(
        "grant", avatar_id, "--to", CAROL, "--by", ALICE, "--expires", "2020-01-01T00:00:00Z"
    )
    assert code == 1 and "already expired" in err


def test_delete(cli: Cli, container: Path) -> None:
    avatar_id = cli.ok("import", str(container), "--owner", ALICE).strip()
    assert cli.ok("delete", avatar_id) == f"deleted {avatar_id}\n"
    code, _, err = cli("show", avatar_id)
    assert code == 1 and err == f"avatar-mf avatar show: no avatar '{avatar_id}'\n"


def test_import_refusals(cli: Cli, container: Path, tmp_path: Path) -> None:
    def arf_only(data: bytes) -> None:
        if not data.startswith(b"PK"):
            raise ValueError("not an ARF container (no ZIP signature)")

    cli.validator = arf_only
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk")
    code, out, err = cli("import", str(junk), "--owner", ALICE)
    assert (code, out) == (1, "")
    assert err == (
        "avatar-mf avatar import: not a valid avatar container: "
        "not an ARF container (no ZIP signature)\n"
    )
    cli.max_avatar_size = 4
    code, _, err = cli("import", str(container), "--owner", ALICE)
    assert code == 1 and "larger than the limit of 4 bytes" in err
    cli.max_avatar_size = 1024
    code, _, err = cli("import", str(tmp_path / "missing.arf"), "--owner", ALICE)
    assert code == 1 and "No such file" in err
    code, _, err = cli("import", str(container), "--owner", "alice")
    assert code == 1 and "not a SIP or tel URI" in err
    assert not (cli.storage / "avatars" / "records").exists() or not any(
        (cli.storage / "avatars" / "records").iterdir()
    )


def test_bad_config_exits_2(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[storage]\npath = ''\n")
    cli.env = {}
    code, out, err = cli("list", "--config", str(config))
    assert (code, out) == (2, "")
    assert "storage.path" in err


def test_config_file_names_the_store(cli: Cli, tmp_path: Path, container: Path) -> None:
    config = tmp_path / "mf.toml"
    config.write_text(f"[storage]\npath = '{tmp_path / 'elsewhere'}'\n")
    cli.env = {}
    avatar_id = cli.ok("import", str(container), "--owner", ALICE, "--config", str(config))
    assert (tmp_path / "elsewhere" / "avatars" / "records" / f"{avatar_id.strip()}.json").exists()


def test_generate_uses_the_configured_base_avatar_stage(cli: Cli) -> None:
    """[pipeline.base_avatar]: its name and options, unless --generator names another."""
    sizes = {}
    for resolution in ("low", "high"):
        cli.env["AVATAR_MF_PIPELINE__BASE_AVATAR__OPTIONS"] = f"resolution={resolution}"
        record = json.loads(cli.ok("generate", "--owner", ALICE, "--json"))
        assert record["metadata"]["generator"] == "procedural"
        sizes[resolution] = record["size"]
    assert sizes["low"] < sizes["high"]
    cli.env["AVATAR_MF_PIPELINE__BASE_AVATAR__NAME"] = ""
    code, out, err = cli("generate", "--owner", ALICE)
    assert (code, out) == (1, "")
    assert "[pipeline.base_avatar] is off" in err
    record = json.loads(cli.ok("generate", "--owner", ALICE, "--json", "--generator", "procedural"))
    assert record["metadata"]["generator"] == "procedural"


@pytest.mark.parametrize(
    "argv",
    [
        ["grant", "x", "--to", BOB, "--by", ALICE],  # neither --expires nor --for
        [
            "grant",
            "x",
            "--to",
            BOB,
            "--by",
            ALICE,
            "--for",
            "1h",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
        ["grant", "x", "--to", BOB, "--by", ALICE, "--expires", "2030-01-01T00:00:00"],  # no zone
        ["grant", "x", "--to", BOB, "--by", ALICE, "--for", "-5"],
        ["import", "f"],  # no --owner
    ],
)
def test_usage_errors(cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli(*argv)
    assert caught.value.code == 2


def test_value_parsers() -> None:
    assert parse_time("2026-12-31T00:00:00Z") == 1798675200.0
    assert parse_time("2026-12-31T01:00:00+01:00") == 1798675200.0
    assert [parse_duration(t) for t in ["3600", "90m", "12h", "7d", "1.5h"]] == [
        3600,
        5400,
        43200,
        604800,
        5400,
    ]


async def test_commands_share_the_store_with_a_running_server(cli: Cli, container: Path) -> None:
    """What the command line writes, a store opened by the server sees (and the reverse)."""
    server = await FilesystemStore.open(cli.storage / "avatars")
    record = await server.put(CONTAINER, owner=BOB)
    code, out, _ = await _in_thread(cli, "list", "--json")
    assert code == 0 and [r["avatar_id"] for r in json.loads(out)] == [record.avatar_id]
    code, out, _ = await _in_thread(cli, "import", str(container), "--owner", ALICE)
    assert (await server.get_record(out.strip())).owner == ALICE


async def _in_thread(cli: Cli, *argv: str) -> tuple[int, str, str]:
    import asyncio

    return await asyncio.to_thread(cli, *argv)  # the commands run their own event loop


def test_real_process(tmp_path: Path, container: Path) -> None:
    """The group wired into a parser by a separate program, run as a child process."""
    program = (
        "import sys\n"
        "from avatar_mf.cli import CliContext, build_parser\n"
        "from avatar_mf.cli.avatar import build_commands\n"
        "args = build_parser([build_commands()]).parse_args(sys.argv[1:])\n"
        "import os\n"
        "sys.exit(args.run(args, CliContext(sys.stdout, sys.stderr, os.environ)))\n"
    )
    env = {"AVATAR_MF_STORAGE__PATH": str(tmp_path / "st"), "PATH": "/usr/bin:/bin"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", program, "avatar", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    imported = run("import", str(container), "--owner", ALICE)
    assert imported.returncode == 0, imported.stderr
    listed = run("list", "--json")
    assert json.loads(listed.stdout)[0]["avatar_id"] == imported.stdout.strip()
