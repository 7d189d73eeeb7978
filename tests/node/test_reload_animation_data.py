"""SIGHUP with the list form of ``[pipeline.animation_data]`` (issue 13): the listed stages
are built again and sessions that start afterwards select among the new ones; a listed stage
that cannot be built is left out, the others apply. A real node in this process, its
listeners on free loopback ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avatar_mf.config import AppConfig
from avatar_mf.node.app import MediaFunction
from avatar_mf.node.reload import plan_reload
from avatar_mf.testing.process import free_port


def _config(port: int, tmp_path: Path, **animation_data: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "sip": {"port": port},
            "admin": {"enabled": False},
            "storage": {"path": str(tmp_path / "storage")},
            "pipeline": {"animation_data": animation_data},
        }
    )


def _offers(node: MediaFunction) -> list[tuple[str, tuple[str, ...]]]:
    assert node.hub is not None
    return [(o.name, o.inputs) for o in node.hub.animation_offers()]


async def test_reload_builds_the_listed_stages_again(tmp_path: Path) -> None:
    port = free_port()
    node = MediaFunction(_config(port, tmp_path, name="text"))
    await node.start()
    try:
        assert _offers(node) == [("text", ("text",))]
        listed = _config(port, tmp_path, names=["text", "voice", "camera"])
        plan = node.reconfigure(listed)
        assert [c.key_path for c in plan.live] == [
            "pipeline.animation_data.name",
            "pipeline.animation_data.names",
        ]
        assert plan.restart == ()
        assert _offers(node) == [
            ("text", ("text",)),
            ("voice", ("voice",)),
            ("camera", ("video", "images")),
        ]
        assert node.config.pipeline.animation_data.names == ("text", "voice", "camera")
        # One listed stage with bad options is left out; the others still apply.
        broken = _config(
            port, tmp_path, names=["voice", "camera"], options={"voice": {"timescale": -1.0}}
        )
        node.reconfigure(broken)
        assert _offers(node) == [("camera", ("video", "images"))]
        # Back to the single form.
        node.reconfigure(_config(port, tmp_path, name="voice"))
        assert _offers(node) == [("voice", ("voice",))]
    finally:
        await node.close()


def test_the_list_form_is_a_live_setting(tmp_path: Path) -> None:
    old = _config(5060, tmp_path, names=["text"])
    new = _config(5060, tmp_path, names=["text", "voice"], options={"voice": {"seed": 3}})
    plan = plan_reload(old, new)
    assert [c.key_path for c in plan.live] == [
        "pipeline.animation_data.options",
        "pipeline.animation_data.names",
    ]
    assert "pipeline.animation_data.names: [text] -> [text, voice]" in [str(c) for c in plan.live]
