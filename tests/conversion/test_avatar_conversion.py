"""Base avatar conversion: VRM 1.0 / glTF -> the common ARF, and the common format -> VRM 1.0."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.avatar import build_glb, read_arf, read_glb, write_arf
from avatar_mf.avatar.check import COMMON_CONTENT_TYPE, check_common
from avatar_mf.avatar.errors import AvatarFormatError
from avatar_mf.avatar.vrm import (
    VRM_MEDIA_TYPE,
    convert_avatar,
    read_vrm,
    split_glb,
    to_common_arf,
    to_vrm,
)
from tests.avatar.samples import low_arf, low_head, tiny_model
from tests.avatar.test_validator import validate  # noqa: F401  (the Khronos validator fixture)
from tests.conversion.vrm_sample import TARGETS, build_vrm


def delta(arf: bytes, shape: str) -> np.ndarray:
    return read_arf(arf).model.target_positions[ARKIT_INDEX[shape]]


def test_a_vrm_file_becomes_a_conforming_arf() -> None:
    arf = to_common_arf(build_vrm(), avatar_id="urn:test:vrm")
    verdict = check_common(arf)
    assert verdict.conforming, verdict.problems
    model = read_arf(arf).model
    names = [j.name for j in model.joints]
    # Humanoid bones renamed; the missing jaw added under the head.
    assert names[:5] == ["J_Bip_C_Hips", "neck", "head", "eyeLeft", "eyeRight"]
    assert "jaw" in names and model.joints[names.index("jaw")].parent == names.index("head")
    # Mouth open (VRM "aa" bound to Fcl_MTH_A) drives jawOpen: the chin vertex goes down.
    assert delta(arf, "jawOpen")[5, 1] < -0.005
    # An ARKit name in another spelling is taken as is.
    assert delta(arf, "eyeBlinkLeft")[0, 1] == pytest.approx(TARGETS["Fcl_EYE_Close_L"][1][1])
    assert delta(arf, "mouthSmileLeft")[2, 0] > 0  # from happy / Fcl_ALL_Joy
    assert not delta(arf, "tongueOut").any()  # nothing maps to it: inert, and said so
    assert any(w.code == "inert-blendshapes" for w in verdict.warnings)


def test_converted_glb_passes_the_khronos_validator(validate: object, tmp_path: Path) -> None:  # noqa: F811
    arf = to_common_arf(build_vrm(), avatar_id="urn:test:vrm")
    (tmp_path / "from-vrm.glb").write_bytes(read_arf(arf).glb)
    (tmp_path / "to-vrm.glb").write_bytes(to_vrm(low_head()))
    (tmp_path / "source.vrm.glb").write_bytes(build_vrm())
    reports = validate(
        tmp_path / "from-vrm.glb",
        tmp_path / "to-vrm.glb",  # type: ignore[operator]
        tmp_path / "source.vrm.glb",
    )
    assert len(reports) == 3
    for report in reports:
        assert report["numErrors"] == 0, report
        assert report["numWarnings"] == 0, report  # VRMC_vrm is an info: unknown extension


def test_glb_with_other_names_and_a_declared_map_is_exact() -> None:
    head = low_head()
    renamed = replace(head, target_names=tuple(f"s{k}" for k in range(len(ARKIT_BLENDSHAPES))))
    glb = build_glb(renamed)
    # Declared map: each s<k> is ARKit shape k, in reverse listing order to show order is free.
    mapping = {f"s{k}": {ARKIT_BLENDSHAPES[k]: 1.0} for k in reversed(range(52))}
    arf = to_common_arf(glb, avatar_id="urn:test:s", mapping=mapping)
    assert check_common(arf).conforming
    assert np.array_equal(read_arf(arf).model.target_positions, head.target_positions)
    # Without a map no name is known: everything inert, still the common layout.
    verdict = check_common(to_common_arf(glb, avatar_id="urn:test:s2"))
    assert verdict.conforming and "52 blendshapes" in verdict.warnings[0].message


def test_glb_names_in_other_spellings_map_by_synonyms() -> None:
    head = low_head()
    spelled = tuple(
        "blendShape1."
        + (n[:-4] + "_L" if n.endswith("Left") else n[:-5] + "_R" if n.endswith("Right") else n)
        for n in ARKIT_BLENDSHAPES
    )
    arf = to_common_arf(build_glb(replace(head, target_names=spelled)), avatar_id="urn:x")
    assert check_common(arf).conforming
    assert np.array_equal(read_arf(arf).model.target_positions, head.target_positions)


def test_common_to_vrm_and_back() -> None:
    head = low_head()
    vrm = to_vrm(head, name="round trip")
    doc, _ = split_glb(vrm)
    assert "VRMC_vrm" in doc["extensionsUsed"]
    back = read_vrm(vrm)
    assert back.name == "round trip"
    assert back.bones["head"] == "head" and back.bones["leftEye"] == "eyeLeft"
    assert set(back.expressions) == {
        "happy",
        "angry",
        "sad",
        "relaxed",
        "surprised",
        "aa",
        "ih",
        "ou",
        "ee",
        "oh",
        "blink",
        "blinkLeft",
        "blinkRight",
        "lookUp",
        "lookDown",
        "lookLeft",
        "lookRight",
    }  # neutral binds nothing
    aa = dict(back.expressions["aa"])
    assert aa[ARKIT_INDEX["jawOpen"]] > 0.5
    again = to_common_arf(vrm, avatar_id="urn:rt")
    assert np.array_equal(read_arf(again).model.target_positions, head.target_positions)


def test_the_dispatcher() -> None:
    glb = build_glb(low_head())
    as_arf = convert_avatar(glb, "model/gltf-binary", COMMON_CONTENT_TYPE, avatar_id="a")
    assert as_arf.content_type == COMMON_CONTENT_TYPE and check_common(as_arf.data).conforming
    same = convert_avatar(low_arf(), COMMON_CONTENT_TYPE, COMMON_CONTENT_TYPE, avatar_id="a")
    assert same.data == low_arf()
    vrm = convert_avatar(low_arf(), COMMON_CONTENT_TYPE, VRM_MEDIA_TYPE, avatar_id="a")
    assert read_vrm(vrm.data).expressions
    plain = convert_avatar(low_arf(), COMMON_CONTENT_TYPE, "model/gltf-binary", avatar_id="a")
    assert read_glb(plain.data).same_as(read_arf(low_arf()).model)
    with pytest.raises(ValueError, match="does not write"):
        convert_avatar(glb, "model/gltf-binary", "image/png", avatar_id="a")
    headless = write_arf(tiny_model(), avatar_id="t", name="t")
    with pytest.raises(AvatarFormatError, match="neck"):
        convert_avatar(headless, COMMON_CONTENT_TYPE, VRM_MEDIA_TYPE, avatar_id="a")


class CountingRunner:
    """A BlockingRunner that runs jobs in the node's executor and counts them, with the thread
    each ran on."""

    def __init__(self) -> None:
        from avatar_mf.pipeline.executor import StageExecutor

        self.inner = StageExecutor(workers=1)
        self.threads: list[int] = []

    async def run(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        import threading

        def job():  # type: ignore[no-untyped-def]
            self.threads.append(threading.get_ident())
            return fn(*args, **kwargs)

        return await self.inner.run(job)


async def test_conversions_are_cached_per_avatar_and_format_and_run_off_the_loop() -> None:
    import asyncio
    import threading

    from avatar_mf.stages.conversion.avatars import AvatarConversions

    conversions = AvatarConversions()
    runner = CountingRunner()
    glb = build_glb(low_head())
    target = conversions.target_for(glb, "model/gltf-binary", [COMMON_CONTENT_TYPE])
    assert target == COMMON_CONTENT_TYPE
    assert conversions.target_for(glb, "model/gltf-binary", []) is None
    assert conversions.target_for(glb, "model/gltf-binary", ["model/gltf-binary"]) is None
    results = await asyncio.gather(
        *(
            conversions.convert(runner, "d1", glb, "model/gltf-binary", target, avatar_id="a")
            for _ in range(3)
        )
    )
    assert len({r.data for r in results}) == 1 and check_common(results[0].data).conforming
    again = await conversions.convert(runner, "d1", glb, "model/gltf-binary", target, avatar_id="a")
    assert again.data == results[0].data
    assert len(runner.threads) == 1 and runner.threads[0] != threading.get_ident()
    assert (conversions.stats.conversions, conversions.stats.cache_hits) == (1, 3)
    vrm = await conversions.convert(
        runner, "d1", glb, "model/gltf-binary", VRM_MEDIA_TYPE, avatar_id="a"
    )
    assert vrm.content_type == VRM_MEDIA_TYPE and len(runner.threads) == 2
    with pytest.raises(AvatarFormatError):
        await conversions.convert(
            runner, "d2", b"glTFjunk" * 4, "model/gltf-binary", target, avatar_id="b"
        )
    assert conversions.stats.failures == 1
    runner.inner.shutdown()
