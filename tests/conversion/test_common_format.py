"""The common fallback format: the checker's verdicts and the ``avatar check`` command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.avatar import Joint, build_glb, write_arf
from avatar_mf.avatar.check import check_common
from avatar_mf.cli import CliContext, build_parser
from avatar_mf.cli.avatar import build_commands
from tests.avatar.samples import low_arf, low_head, tiny_model


def run_check(*argv: str) -> tuple[int, str]:
    args = build_parser([build_commands()]).parse_args(["avatar", "check", *argv])
    out = io.StringIO()
    code: int = args.run(args, CliContext(stdout=out, stderr=io.StringIO(), environ={}))
    return code, out.getvalue()


def test_the_generated_head_conforms() -> None:
    verdict = check_common(low_arf())
    assert verdict.conforming, verdict.problems
    assert verdict.warnings == ()


def test_a_bare_glb_is_not_the_common_format() -> None:
    verdict = check_common(build_glb(low_head()))
    assert [p.code for p in verdict.problems] == ["not-arf"]


def test_a_damaged_container_reports_the_reader_code() -> None:
    data = bytearray(low_arf())
    data[:4] = b"XXXX"
    data[-22:-18] = b"XXXX"  # no end-of-central-directory record any more
    verdict = check_common(bytes(data))
    assert not verdict.conforming
    assert verdict.problems[0].code in {"not-zip", "zip-corrupt"}


def test_other_names_and_a_headless_skeleton_are_named() -> None:
    verdict = check_common(write_arf(tiny_model(), avatar_id="t", name="tiny"))
    codes = [p.code for p in verdict.problems]
    assert codes == ["blendshape-names", "skeleton-joints"]
    assert "missing 52" in verdict.problems[0].message
    assert "neck" in verdict.problems[1].message


def test_arkit_names_out_of_order_are_not_conforming() -> None:
    head = low_head()
    order = list(range(len(ARKIT_BLENDSHAPES)))
    order[0], order[1] = order[1], order[0]
    swapped = replace(
        head,
        target_names=tuple(head.target_names[i] for i in order),
        target_positions=head.target_positions[order],
        target_normals=None if head.target_normals is None else head.target_normals[order],
    )
    verdict = check_common(write_arf(swapped, avatar_id="s", name="swapped"))
    assert [p.code for p in verdict.problems] == ["blendshape-names"]
    assert "order" in verdict.problems[0].message


def test_jaw_outside_the_head_and_inert_shapes() -> None:
    head = low_head()
    joints = list(head.joints)
    jaw = head.joint_index("jaw")
    neck = head.joint_index("neck")
    joints[jaw] = Joint("jaw", neck, joints[jaw].translation)
    targets = np.array(head.target_positions)
    targets[ARKIT_BLENDSHAPES.index("tongueOut")] = 0.0
    changed = replace(head, joints=tuple(joints), target_positions=targets)
    verdict = check_common(write_arf(changed, avatar_id="j", name="jaw"))
    assert [p.code for p in verdict.problems] == ["skeleton-hierarchy"]
    assert [w.code for w in verdict.warnings] == ["inert-blendshapes"]
    assert "tongueOut" in verdict.warnings[0].message


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    good = tmp_path / "good.arf"
    good.write_bytes(low_arf())
    bad = tmp_path / "tiny.arf"
    bad.write_bytes(write_arf(tiny_model(), avatar_id="t", name="tiny"))
    code, out = run_check(str(good))
    assert code == 0 and "good.arf: conforming" in out
    code, out = run_check(str(bad))
    assert code == 1 and "not conforming" in out and "problem blendshape-names" in out
    code, out = run_check(str(bad), "--json")
    view = json.loads(out)
    assert code == 1 and view["conforming"] is False
    assert [p["code"] for p in view["problems"]] == ["blendshape-names", "skeleton-joints"]
    code, _ = run_check(str(tmp_path / "absent.arf"))
    assert code == 1


@pytest.mark.timeout(60)
def test_cli_in_a_child_process(tmp_path: Path) -> None:
    good = tmp_path / "good.arf"
    good.write_bytes(low_arf())
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    result = subprocess.run(
        [sys.executable, "-m", "avatar_mf", "avatar", "check", str(good)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "conforming" in result.stdout
