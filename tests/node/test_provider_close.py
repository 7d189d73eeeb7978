"""A node closes its stage providers when it stops: the ones it runs and the ones a reload
replaced (a camera or photo provider holds worker processes and a face landmarker; left open
they outlive the node until the interpreter exits, and an unclosed landmarker can hang that
exit). A real node in this process, its listeners on free loopback ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avatar_mf.avatar_session.hub import ConfiguredStage
from avatar_mf.config import AppConfig
from avatar_mf.node.app import MediaFunction
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.testing.process import free_port


class HoldsWorkers:
    """A provider with node-wide resources: counts its closes."""

    def __init__(self) -> None:
        self.closed = 0

    def open(self, context: StageContext) -> StageBase:
        return StageBase()

    def close(self) -> None:
        self.closed += 1


class FailsToClose(HoldsWorkers):
    def close(self) -> None:
        super().close()
        raise RuntimeError("worker already gone")


def _config(tmp_path: Path, **pipeline: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "sip": {"port": free_port()},
            "admin": {"enabled": False},
            "storage": {"path": str(tmp_path / "storage")},
            "pipeline": {"animation_data": {"name": ""}, **pipeline},
        }
    )


async def test_running_and_replaced_providers_are_closed_once_at_stop(tmp_path: Path) -> None:
    config = _config(tmp_path)
    node = MediaFunction(config)
    await node.start()
    replaced, failing, running = HoldsWorkers(), FailsToClose(), HoldsWorkers()
    try:
        hub = node.hub
        assert hub is not None
        hub.stages = (
            ConfiguredStage("animation_data", "replaced", replaced),
            ConfiguredStage("animation", "failing", failing),
        )
        # A reload that changes the pipeline builds new providers from the config; the old
        # ones stay open for the sessions that use them.
        node.reconfigure(_config(tmp_path, animation_data={"name": "text"}))
        assert replaced.closed == 0 and failing.closed == 0
        hub.stages = (*hub.stages, ConfiguredStage("scene", "running", running))
    finally:
        await node.close()
    # Each closed once; one raising does not keep the others open.
    assert (replaced.closed, failing.closed, running.closed) == (1, 1, 1)
