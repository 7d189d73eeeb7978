"""The deployment files of docs/deploy agree with the product: every metric the Grafana
dashboard and the Prometheus alert rules name is in the node's catalogue, and the systemd unit
stops the node no sooner than its drain allows (nothing here needs systemd or Prometheus)."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.config import load_config
from avatar_mf.node.metrics import METRICS

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
ALERTS = DEPLOY / "prometheus-alerts.yml"
UNIT = DEPLOY / "avatar-mf.service"

#: Series a Prometheus scrape of the node has besides the catalogue: prometheus-client's
#: process and platform collectors, and Prometheus's own ``up``.
STANDARD = frozenset(
    {
        "up", "process_resident_memory_bytes", "process_virtual_memory_bytes",
        "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
        "process_start_time_seconds", "python_info",
    }
)  # fmt: skip
_SERIES = re.compile(r"\b((?:avatar_mf|process|python)_[a-z0-9_]+|up)\b")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def catalogue_series() -> set[str]:
    names = set()
    for spec in METRICS:
        names.add(spec.name)
        if spec.kind == "histogram":
            names.update(spec.name + suffix for suffix in _HISTOGRAM_SUFFIXES)
    return names


def series_in(expression: str) -> set[str]:
    return set(_SERIES.findall(expression))


def dashboard_expressions() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    expressions = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            expressions.extend(t["expr"] for t in inner.get("targets", []))
    return expressions


def alert_rules() -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: the rules not parsed")
    data: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_dashboard_names_only_catalogued_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    used = set().union(*(series_in(e) for e in expressions))
    unknown = used - catalogue_series() - STANDARD
    assert not unknown, f"the dashboard names metrics the node does not expose: {unknown}"
    # The main families are on it.
    for name in ("avatar_mf_dialogs_active", "avatar_mf_calls_failed_total",
                 "avatar_mf_datachannel_sessions_failed_total"):  # fmt: skip
        assert name in used


def test_alert_rules_name_only_catalogued_metrics() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"].startswith("AvatarMf") and rule["labels"]["severity"]
        unknown = series_in(rule["expr"]) - catalogue_series() - STANDARD
        assert not unknown, f"{rule['alert']} names unknown metrics: {unknown}"


def test_the_series_pattern_finds_what_it_must() -> None:
    """The check above would pass vacuously if the pattern found nothing."""
    assert series_in("sum by (le) (rate(avatar_mf_nope_bucket[5m])) / up") == {
        "avatar_mf_nope_bucket", "up",
    }  # fmt: skip
    assert "avatar_mf_nope_bucket" not in catalogue_series()


def test_systemd_unit_outlasts_the_drain() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    drain = load_config(None, env={}).lifecycle.drain_timeout
    assert float(service["TimeoutStopSec"]) > drain
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
    assert service["ExecStartPre"].split()[1] == "check-config"


def _requirement_name(text: str) -> str:
    return re.split(r"[<>=!~;\[ ]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_lock_pins_every_runtime_dependency_with_hashes_and_no_dev_tool() -> None:
    import tomllib

    root = DEPLOY.parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lock = (root / "requirements.lock").read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock):
        head = block.split(" ", 1)[0]
        if "==" in head:
            name, version = head.split("==")
            pins[name.lower()] = version
            assert "--hash=sha256:" in block, f"{name} has no hash"
    for requirement in project["dependencies"]:
        assert _requirement_name(requirement) in pins, f"{requirement} is not locked"
    # The exact pins of pyproject.toml are the locked versions.
    for requirement in project["dependencies"]:
        if "==" in requirement:
            name, version = requirement.split("#")[0].strip().split("==")
            assert pins[name.lower()] == version.strip()
    dev = {_requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    assert not dev & set(pins), f"dev tools in the runtime lock: {dev & set(pins)}"
