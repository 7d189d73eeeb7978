"""Who is shown which rendered avatar (node/video_out.py): an avatar-assisted call (Contact tag
or hello) gets a reader of the first other participant's rendered frames; others get none; a
hello asking the UE to animate overrides nothing for an assisted UE; [render] defaults reach
the network stage's options."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from avatar_mf.avatar_session.hub import METADATA, AvatarHub, ConfiguredStage
from avatar_mf.channels.base import ChannelService
from avatar_mf.config import AppConfig
from avatar_mf.node.video_out import VideoPicker, with_render_defaults
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import Hello, dump_message
from avatar_mf.sip.feature_tags import avatar_feature_tags
from avatar_mf.stages.animation.network import NetworkAnimation
from avatar_mf.stages.animation.video import VideoFrameOut
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock
from tests.avatar_session.test_avatar_hub import settle

ASSISTED = '<sip:u@127.0.0.1>;+sip.3gpp-avatar-support="avatar-assisted"'


def join(hub: AvatarHub, call: str, contact: str = "<sip:u@127.0.0.1>") -> ChannelService:
    info = channel_info(stream_id=1000, subprotocol=METADATA, call_id=call,
                        identity=f"sip:{call}@127.0.0.1", request_uri="sip:r@127.0.0.1",
                        avatar_tags=avatar_feature_tags(contact))
    return hub.services()[METADATA](RecordingChannel(info))


def make_hub() -> tuple[AvatarHub, NetworkAnimation]:
    clock = FakeClock(start=10.0)
    store = MemoryStore()
    provider = NetworkAnimation(renderer=SimpleNamespace())
    hub = AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[ConfiguredStage("animation", "network", provider)],
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )
    return hub, provider


async def test_only_avatar_assisted_calls_are_shown_the_first_other_rendered_avatar() -> None:
    hub, provider = make_hub()
    join(hub, "c1")
    viewer = join(hub, "c2", ASSISTED)
    plain = join(hub, "c3")
    await settle(lambda: len(provider.sources) == 3)
    pick = VideoPicker(hub)
    assert pick("c2") is None  # nobody's avatar is rendered yet
    source = provider.sources["p1"]
    source.offer(VideoFrameOut("p1", rgba=np.zeros((2, 2, 4), np.uint8)))
    reader = pick("c2")
    assert reader is not None and reader.source is source
    assert pick("c3") is None  # not avatar-assisted: it animates the avatars itself
    assert pick("c1") is None and pick("nobody") is None  # its own avatar is not shown
    # A hello asking the MF to animate makes a UE a receiver of video without the tag; an
    # assisted UE's hello asking to animate itself is refused (conflict): it stays assisted.
    plain.on_message(dump_message(Hello(id="h1", role="receiver", animation="network")))
    viewer.on_message(dump_message(Hello(id="h2", role="receiver", animation="ue")))
    await settle()
    assert pick("c3") is not None and pick("c2") is not None
    source.close()  # the talker left: nothing to show
    assert pick("c2") is None
    await hub.aclose()


def test_render_settings_are_the_network_stage_defaults() -> None:
    config = AppConfig.model_validate(
        {"pipeline": {"animation": {"name": "network", "options": {"rate": 12.5}}},
         "render": {"size": 255, "rate": 30.0, "workers": 3}}
    )
    from avatar_mf.node.stages import stage_settings

    settings = with_render_defaults(stage_settings(config.pipeline), config.render)
    options = dict(settings["animation"].options)
    assert options["width"] == options["height"] == 254  # even
    assert options["rate"] == 12.5  # the stage's own option wins
    assert options["workers"] == 3
    assert options["watched_only"] is True  # the node renders only what someone is shown
    plain = AppConfig.model_validate({})
    assert with_render_defaults(stage_settings(plain.pipeline), plain.render)["animation"] is (
        stage_settings(plain.pipeline)["animation"]
    )
