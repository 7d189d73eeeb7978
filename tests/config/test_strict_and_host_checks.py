"""Strict setting types, and the host checks that ``check-config`` shares with ``serve``."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from avatar_mf.cli import main
from avatar_mf.config import ConfigError, load_config
from avatar_mf.node.preflight import local_address_problem, preflight

from .conftest import run_cli

WriteConfig = Callable[..., Path]


def _problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        ("[sip]", "port = 5060.0", "sip.port: Input should be a valid integer (got 5060.0)"),
        ("[sip]", 't1 = "0.5"', 'sip.t1: Input should be a valid number (got "0.5")'),
        ("[admin]", 'enabled = "yes"', 'admin.enabled: Input should be a valid boolean (got "ye'),
        ("[admin]", "enabled = 1", "admin.enabled: Input should be a valid boolean (got 1)"),
        ("[sip]", "port = true", "sip.port: Input should be a valid integer (got true)"),
        ("[media]", "bootstrap_stream_ids = [0, 10.0]", "media.bootstrap_stream_ids[1]: Input"),
    ],
)
def test_file_values_are_not_coerced(
    write_config: WriteConfig, section: str, line: str, expected: str
) -> None:
    path = write_config(f"{section}\n{line}\n")
    assert [p.removeprefix(f"{path}:2: ") for p in _problems(path)][0].startswith(expected)


def test_an_integer_is_a_valid_number(write_config: WriteConfig) -> None:
    config = load_config(write_config("[sip]\nt1 = 1\nt2 = 8\n"), env={})
    assert (config.sip.t1, config.sip.t2) == (1.0, 8.0)


def test_environment_text_is_read_as_the_setting_type(tmp_path: Path) -> None:
    env = {
        "AVATAR_MF_SIP__PORT": "5070",
        "AVATAR_MF_SIP__T1": "0.25",
        "AVATAR_MF_ADMIN__ENABLED": "False",
        "AVATAR_MF_MEDIA__BOOTSTRAP_STREAM_IDS": "0,10",
    }
    config = load_config(None, env=env)
    assert config.sip.port == 5070
    assert config.sip.t1 == 0.25
    assert config.admin.enabled is False
    assert config.media.bootstrap_stream_ids == (0, 10)


def test_environment_text_of_another_type_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"AVATAR_MF_SIP__PORT": "5060.0", "AVATAR_MF_ADMIN__ENABLED": "yes"})
    assert [str(p) for p in caught.value.problems] == [
        'env AVATAR_MF_ADMIN__ENABLED: admin.enabled: Input should be a valid boolean (got "yes")',
        'env AVATAR_MF_SIP__PORT: sip.port: Input should be a valid integer (got "5060.0")',
    ]


# --------------------------------------------------------------------------- host checks


def _host_keys(tmp_path: Path, **env: str) -> list[str]:
    config = load_config(
        None, env={"AVATAR_MF_STORAGE__PATH": str(tmp_path / "storage")}
        | {f"AVATAR_MF_{k}": v for k, v in env.items()}
    )
    return [p.key_path for p in preflight(config)]


def test_the_defaults_pass_the_host_checks(tmp_path: Path) -> None:
    assert _host_keys(tmp_path) == []


def test_missing_app_dir_is_a_problem(tmp_path: Path) -> None:
    assert _host_keys(tmp_path, BOOTSTRAP__APP_DIR=str(tmp_path / "nope")) == [
        "bootstrap.app_dir"
    ]


def test_storage_path_under_a_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    keys = _host_keys(tmp_path, STORAGE__PATH=str(tmp_path / "file" / "storage"))
    assert keys == ["storage.path"]


def test_storage_path_not_yet_there_is_fine_and_not_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "storage"
    assert _host_keys(tmp_path, STORAGE__PATH=str(target)) == []
    assert not (tmp_path / "a").exists()


def test_media_host_must_be_local(tmp_path: Path) -> None:
    # TEST-NET-3 (RFC 5737): never assigned to a host.
    assert _host_keys(tmp_path, MEDIA__HOST="203.0.113.7") == ["media.host"]
    assert local_address_problem("203.0.113.7") == "203.0.113.7 is not an address of this host"
    assert local_address_problem("127.0.0.1") is None
    assert local_address_problem("0.0.0.0") is None


def test_stage_name_no_package_provides_is_a_problem(tmp_path: Path) -> None:
    keys = _host_keys(tmp_path, PIPELINE__SCENE__NAME="nosuch", PIPELINE__ANIMATION_DATA__NAME="x")
    assert keys == ["pipeline.animation_data.name", "pipeline.scene.name"]


def test_check_config_runs_the_host_checks(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(
        f'[media]\nhost = "203.0.113.7"\n[storage]\npath = "{tmp_path / "s"}"\n'
    )
    out = io.StringIO()
    assert main(["check-config", str(path)], stdout=out, stderr=io.StringIO(), environ={}) == 1
    assert out.getvalue() == "host check: media.host: 203.0.113.7 is not an address of this host\n"
    out = io.StringIO()
    code = main(["check-config", "--no-host-checks", str(path)], stdout=out, environ={})
    assert (code, out.getvalue()) == (0, f"{path}: OK\n")


def test_serve_refuses_what_check_config_refuses(write_config: WriteConfig, tmp_path: Path) -> None:
    """The real program: serve exits 2 before listening, with the same problem line."""
    path = write_config(
        f'[media]\nhost = "203.0.113.7"\n[storage]\npath = "{tmp_path / "s"}"\n'
        '[admin]\nenabled = false\n[sip]\nport = 1\n'
    )
    result = run_cli("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "host check: media.host: 203.0.113.7 is not an address of this host" in result.stderr
    assert "not starting: 1 configuration problem" in result.stderr


def test_every_integer_number_and_boolean_setting_is_strict() -> None:
    """A setting added later without a strict type would coerce silently again."""
    from pydantic import Strict

    from avatar_mf.config.sections import iter_setting_fields

    scalars = [
        (path, field)
        for path, field in iter_setting_fields()
        if field.annotation in (int, float, bool)
    ]
    assert len(scalars) > 20
    loose = [".".join(path) for path, field in scalars if Strict(True) not in field.metadata]
    assert loose == []


def test_a_listed_animation_data_stage_no_package_provides_is_a_problem(tmp_path: Path) -> None:
    keys = _host_keys(tmp_path, PIPELINE__ANIMATION_DATA__NAMES='["text", "voise"]')
    assert keys == ["pipeline.animation_data.names"]
    config = load_config(
        None,
        env={
            "AVATAR_MF_STORAGE__PATH": str(tmp_path / "storage"),
            "AVATAR_MF_PIPELINE__ANIMATION_DATA__NAMES": '["text", "voise"]',
        },
    )
    (problem,) = preflight(config)
    assert "'voise'" in problem.message and "camera" in problem.message
    assert _host_keys(tmp_path, PIPELINE__ANIMATION_DATA__NAMES='["text", "voice", "camera"]') == []
