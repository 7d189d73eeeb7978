"""One node per core (node/spawn.py, cli/node.py): the plan, the files it writes, and the
systemd template that reads them. The running nodes behind Kamailio are in
tests/lab/test_node_spawn.py."""

from __future__ import annotations

import configparser
import io
from pathlib import Path

import pytest

from avatar_mf.cli import main
from avatar_mf.config import load_config
from avatar_mf.node.spawn import dispatcher_list, environment_file, plan_nodes
from avatar_mf.testing.kamailio import dispatcher_list as lab_dispatcher_list

TEMPLATE = Path(__file__).resolve().parents[2] / "configs" / "systemd" / "avatar-mf@.service"


def test_nodes_get_consecutive_ports_and_their_own_storage(tmp_path: Path) -> None:
    plans = plan_nodes(
        3, host="192.0.2.10", base_port=5080, admin_base_port=8080, storage_root=tmp_path
    )
    assert [(p.index, p.sip_port, p.admin_port) for p in plans] == [
        (1, 5080, 8080),
        (2, 5081, 8081),
        (3, 5082, 8082),
    ]
    assert [p.storage for p in plans] == [tmp_path / f"node{i}" for i in (1, 2, 3)]
    assert all(p.cpu is None for p in plans)
    pinned = plan_nodes(
        3, host="::1", base_port=5080, admin_base_port=8080, storage_root=tmp_path, pin=True,
        cpus=[2, 5],
    )  # fmt: skip
    assert [p.cpu for p in pinned] == [2, 5, 2]
    assert pinned[0].uri == "sip:[::1]:5080"


@pytest.mark.parametrize(
    ("count", "base", "admin"), [(0, 5080, 8080), (4, 5080, 5082), (2, 65535, 8080)]
)
def test_impossible_plans(count: int, base: int, admin: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plan_nodes(count, host="127.0.0.1", base_port=base, admin_base_port=admin,
                   storage_root=tmp_path)  # fmt: skip


def test_dispatcher_list_is_the_labs(tmp_path: Path) -> None:
    plans = plan_nodes(
        2, host="127.0.0.1", base_port=5080, admin_base_port=8080, storage_root=tmp_path
    )
    assert dispatcher_list(plans) == lab_dispatcher_list(["127.0.0.1:5080", "127.0.0.1:5081"])


def test_environment_file_sets_the_node_apart(tmp_path: Path) -> None:
    plan = plan_nodes(
        2, host="127.0.0.1", base_port=5080, admin_base_port=8080, storage_root=tmp_path
    )[1]
    lines = environment_file(plan).splitlines()
    env = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    config = load_config(None, env=env)
    assert (config.sip.port, config.admin.port) == (5081, 8081)
    assert config.storage.path == tmp_path / "node2"


def test_plan_command_writes_the_list_and_the_instance_files(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "node",
            "plan",
            "--nodes",
            "2",
            "--base-port",
            "5180",
            "--admin-base-port",
            "8180",
            "--storage-root",
            str(tmp_path / "st"),
            "--dispatcher-list",
            str(tmp_path / "d.list"),
            "--env-dir",
            str(tmp_path / "env"),
        ],  # fmt: skip
        stdout=out,
        stderr=err,
        environ={},
    )
    assert code == 0, err.getvalue()
    assert (tmp_path / "d.list").read_text().count("sip:127.0.0.1:518") == 2
    assert sorted(p.name for p in (tmp_path / "env").iterdir()) == ["1.env", "2.env"]
    assert "AVATAR_MF_SIP__PORT=5181" in (tmp_path / "env" / "2.env").read_text()
    assert main(["node", "plan", "--nodes", "0"], stdout=out, stderr=err, environ={}) == 2


def test_systemd_template_reads_the_instance_file_and_outlasts_the_drain() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(TEMPLATE.read_text())
    service = unit["Service"]
    # strict=False keeps the last of the two EnvironmentFile lines: the instance's own.
    assert service["EnvironmentFile"] == "/etc/avatar-mf/nodes/%i.env"
    assert "--env-dir /etc/avatar-mf/nodes" in TEMPLATE.read_text()
    drain = load_config(None, env={}).lifecycle.drain_timeout
    assert float(service["TimeoutStopSec"]) > drain
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
