"""Negotiation with conversion: the fallback always offered, SDP a=dcsa asks, and the
converter as a pluggable stage found by entry point."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from avatar_mf.avatar_session.hub import METADATA
from avatar_mf.avatar_session.negotiation import (
    NetworkFunctions,
    sdp_asks,
    with_fallback,
    with_sdp_asks,
)
from avatar_mf.pipeline import registry
from avatar_mf.protocol.metadata import Hello, dump_message
from avatar_mf.sdp import parse_dcsa
from avatar_mf.stages.conversion import StandardConverters
from avatar_mf.testing.channels import RecordingChannel, channel_info
from tests.conversion.test_room_conversion import make_hub
from tests.stages.lab_packages import installed_package

REPO = Path(__file__).resolve().parents[2]


def test_the_fallback_is_always_offered_first_among_the_converted() -> None:
    bare = with_fallback(NetworkFunctions(profiles=("x-profile",), formats=("model/gltf-binary",)))
    assert bare.profiles == ("arf-face-v1", "x-profile")
    assert bare.formats == ("application/vnd.arf+zip", "model/gltf-binary")
    full = with_fallback(NetworkFunctions(), ("arf-face-v1", "ovr-visemes-15"), ("model/vrm",))
    assert full.profiles == ("arf-face-v1", "ovr-visemes-15")
    assert full.formats == ("application/vnd.arf+zip", "model/vrm")


def test_dcsa_attributes_give_the_lists_the_hello_leaves_out() -> None:
    lines = [
        "1000 3gpp-avatar-profiles:ovr-visemes-15, arf-face-v1",
        "1000 3gpp-avatar-formats:application/vnd.arf+zip",
        "1000 3gpp-req-app:avatar",
    ]
    attributes = [parse_dcsa(line).attribute for line in lines]
    assert sdp_asks(attributes) == (("ovr-visemes-15", "arf-face-v1"), ("application/vnd.arf+zip",))
    info = replace(channel_info(), dcsa=tuple(attributes))
    silent = with_sdp_asks(Hello(id="h", role="both"), info)
    assert silent.animation_profiles == ("ovr-visemes-15", "arf-face-v1")
    assert silent.avatar_formats == ("application/vnd.arf+zip",)
    explicit = Hello(id="h", role="both", animation_profiles=("arf-face-v1",))
    both = with_sdp_asks(explicit, info)
    assert both.animation_profiles == ("arf-face-v1",)  # the hello wins where it speaks
    assert both.avatar_formats == ("application/vnd.arf+zip",)
    assert with_sdp_asks(explicit, channel_info()) is explicit


async def test_a_hello_without_lists_is_answered_from_the_sdp() -> None:
    hub = make_hub(StandardConverters())
    info = replace(
        channel_info(stream_id=1000, subprotocol=METADATA, call_id="c1"),
        dcsa=("3gpp-avatar-profiles:ovr-visemes-15",),
    )
    meta = RecordingChannel(info)
    service = hub.services()[METADATA](meta)
    service.on_message(dump_message(Hello(id="h1", role="both")))
    import json

    caps = [json.loads(m) for m in meta.sent if "capabilities" in m]
    assert caps[-1]["animationProfiles"] == ["ovr-visemes-15"]
    assert caps[-1]["conversions"][0]["target"] == "ovr-visemes-15"


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[None]:
    """The product's own converter entry point as pyproject.toml declares it, installed in a
    dist-info on sys.path (the shared environment may predate it)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["avatar_mf.stages.converter"]
    assert declared == {"standard": "avatar_mf.stages.conversion:StandardConverters"}
    groups = {"avatar_mf.stages.converter": declared}
    with installed_package(tmp_path, "convstage", groups):
        yield


def test_the_converter_is_a_stage_found_by_entry_point(installed: None) -> None:
    provider = registry.create(
        "converter",
        "standard",
        {
            "groups": {"class": ["sip:*@school"]},
            "policy": [{"audience": ["group:class"], "filter": {"clamp": 0.5}}],
        },
    )
    assert isinstance(provider, StandardConverters)
    assert provider.profiles[0] == "arf-face-v1"
    with pytest.raises(ValueError, match="no group"):
        registry.create(
            "converter",
            "standard",
            {"policy": [{"audience": ["group:x"], "filter": {"clamp": 0.5}}]},
        )
    with pytest.raises(ValueError, match="policy"):
        registry.create("converter", "standard", {"policy": [{"filter": {"clamp": 2}}]})
