"""The Docker lab files agree with each other and with the product (nothing here needs Docker).

The images cannot be built in CI (no Docker engine); these checks catch the drift that would
only show at ``docker compose up``: an address in one file and not in another, a config the MF
rejects, an entrypoint that does not match the CLI.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.config import load_config
from avatar_mf.testing.kamailio import dispatcher_list
from avatar_mf.ua.b2bua import RoomPolicy

from .conftest import DOCKER_DIR

COMPOSE = DOCKER_DIR / "compose.yaml"
CONFIG = DOCKER_DIR / "config.toml"
DISPATCHER = DOCKER_DIR / "kamailio" / "dispatcher.list"
MF_SERVICES = ("mf1", "mf2")


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: compose.yaml not parsed")
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _address(service: dict[str, Any]) -> str:
    return str(service["networks"]["imslab"]["ipv4_address"])


def _defines(command: list[str]) -> dict[str, str]:
    return dict(
        value.split("=", 1) for flag, value in zip(command, command[1:], strict=False)
        if flag == "-A"
    )  # fmt: skip


def _dispatcher_uris(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line and not line.startswith("#")]


def test_container_config_is_valid_for_every_node() -> None:
    """docker/config.toml loads, as is and with each node's environment overrides."""
    config = load_config(CONFIG, env={})
    assert str(config.sip.host) == "0.0.0.0"
    assert config.lifecycle.drain_timeout == 30.0
    for last in (11, 12):
        node = load_config(
            CONFIG,
            env={
                "AVATAR_MF_SIP__ADVERTISED_HOST": f"172.28.0.{last}",
                "AVATAR_MF_MEDIA__HOST": f"172.28.0.{last}",
            },
        )
        assert node.sip.advertised_host == f"172.28.0.{last}"


def test_dispatcher_list_is_generated() -> None:
    """docker/kamailio/dispatcher.list is what the helper writes for the compose nodes."""
    text = DISPATCHER.read_text()
    body = "".join(text.splitlines(keepends=True)[3:])  # after its 3-line header comment
    assert body == dispatcher_list(["172.28.0.11:5060", "172.28.0.12:5060"])


def test_compose_addresses_agree() -> None:
    """Every address in compose.yaml, config.toml and dispatcher.list is the same one."""
    compose = _compose()
    services = compose["services"]
    subnet = ipaddress.ip_network(compose["networks"]["imslab"]["ipam"]["config"][0]["subnet"])
    addresses = {name: _address(service) for name, service in services.items()}
    assert all(ipaddress.ip_address(a) in subnet for a in addresses.values()), addresses
    assert len(set(addresses.values())) == len(addresses)

    config = load_config(CONFIG, env={})
    assert any(subnet.subnet_of(net) for net in config.sip.trusted_peers if net.version == 4)
    for name in MF_SERVICES:
        env = services[name]["environment"]
        assert env["AVATAR_MF_SIP__ADVERTISED_HOST"] == addresses[name]
        assert env["AVATAR_MF_MEDIA__HOST"] == addresses[name]
        assert "./config.toml:/etc/avatar-mf/config.toml:ro" in services[name]["volumes"]
        grace = int(str(services[name]["stop_grace_period"]).rstrip("s"))
        assert grace > config.lifecycle.drain_timeout
    assert _dispatcher_uris(DISPATCHER.read_text()) == [
        f"sip:{addresses[name]}:{config.sip.port}" for name in MF_SERVICES
    ]

    defines = _defines(services["kamailio"]["command"])
    assert defines["LISTEN_IP"] == addresses["kamailio"]
    proxy = f"{addresses['kamailio']}:{defines['LISTEN_PORT']}"
    ue = services["ue"]["command"]
    assert ue[-1] == proxy
    assert ue[ue.index("-i") + 1] == addresses["ue"]
    assert (DOCKER_DIR / "sipp" / Path(ue[ue.index("-sf") + 1]).name).exists()


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_test_ues_register_with_the_proxy() -> None:
    """ue1 and ue2 run the MF image's test UE: their registrar is the proxy's address and
    port, their SIP and media address their own, their options parse as the CLI's, and UE1
    calls the user UE2 registers."""
    from avatar_mf.cli import build_parser

    compose = _compose()
    services = compose["services"]
    defines = _defines(services["kamailio"]["command"])
    proxy = f"{_address(services['kamailio'])}:{defines['LISTEN_PORT']}"
    listen, call = services["ue2"], services["ue1"]
    assert listen["entrypoint"] == ["avatar-mf", "ue", "listen"]
    assert call["entrypoint"] == ["avatar-mf", "ue", "call"]
    for service in (listen, call):
        assert service["image"] == services["mf1"]["image"]
        assert _option(service["command"], "--local-host") == _address(service)
        assert service["depends_on"]["kamailio"]["condition"] == "service_healthy"
    assert _option(listen["command"], "--registrar") == proxy
    # The nodes place second legs through the proxy, and ue1's call is not to a room.
    config = load_config(CONFIG, env={})
    assert config.calls.outbound_proxy_uri.startswith(f"sip:{proxy};")
    assert not RoomPolicy(config.calls.room_pattern).is_room(call["command"][0])
    user = _option(listen["command"], "--user")
    assert call["command"][0] == f"sip:{user}@{proxy}"
    parser = build_parser()
    for service in (listen, call):
        args = parser.parse_args([*service["entrypoint"][1:], *service["command"]])
        assert callable(args.run)


def test_mf_dockerfile() -> None:
    """Multi-stage slim build, non-root runtime, the CLI entrypoint and a urllib health check."""
    text = (DOCKER_DIR / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS builder$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, re.MULTILINE)
    assert re.search(r"^USER avatar-mf$", text, re.MULTILINE)
    assert (
        'ENTRYPOINT ["avatar-mf", "serve", "--config", "/etc/avatar-mf/config.toml"]' in text
    )
    assert "http://127.0.0.1:8080/healthz" in text
    for port in ("5060/udp", "5060/tcp", "8080/tcp"):
        assert port in text


def _docker_run_examples(text: str) -> list[str]:
    """The ``docker run`` commands of the Dockerfile's comments, continuation lines joined."""
    lines = [line.removeprefix("#").strip() for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.startswith("docker run ")]


def test_dockerfile_run_examples_give_media_host_an_address_of_the_container() -> None:
    """The audit's finding: the example mounted docker/config.toml, whose media.host is mf1's
    lab address, into a container that does not have it (serve now refuses that)."""
    examples = _docker_run_examples((DOCKER_DIR / "Dockerfile").read_text())
    assert examples
    media_host = load_config(CONFIG, env={}).media.host
    for example in examples:
        words = example.split()
        assert "docker/config.toml:/etc/avatar-mf/config.toml:ro" in example
        if "--ip" in words:
            assert words[words.index("--ip") + 1] == media_host, example
        else:
            assert "AVATAR_MF_MEDIA__HOST=" in example, example
            assert "--network host" in example, example
