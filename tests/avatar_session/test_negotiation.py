"""Negotiated placement of each avatar function (TR 26.813 A.1): the full matrix.

Every combination of Contact tag x hello asks x MF abilities is checked against the rules of
avatar_mf.avatar_session.negotiation (and docs/protocol.md), each written here as its own
predicate over the inputs -- the expected values are never taken from the code under test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from avatar_mf.avatar_session.negotiation import (
    NetworkFunctions,
    capabilities,
    negotiate,
)
from avatar_mf.protocol.metadata import (
    Capabilities,
    Hello,
    Placement,
    dump_message,
    parse_message,
)
from avatar_mf.sip.feature_tags import AvatarFeatureTags, AvatarSupport, avatar_feature_tags

ASKS: tuple[Placement | None, ...] = ("ue", "network", None)
TAGS = tuple(AvatarSupport)
MF_PROFILES = ("arf-face-v1",)
MF_FORMATS = ("application/vnd.arf+zip", "model/gltf-binary")
# (hello list, expected agreed list or None for "refused: no common")
PROFILE_CASES = (
    ((), MF_PROFILES),
    (("arf-body-v1", "arf-face-v1"), ("arf-face-v1",)),
    (("arf-body-v1",), None),
)
FORMAT_CASES = (
    ((), MF_FORMATS),
    (("model/gltf-binary", "model/x-vendor-avatar"), ("model/gltf-binary",)),
    (("model/x-vendor-avatar",), None),
)
INPUT_CASES = ((), ("text",), ("voice",), ("text", "voice"))
NETWORKS = tuple(
    NetworkFunctions(
        base_avatar_generation=base,
        animation_data_inputs=inputs,
        animation=animation,
        profiles=MF_PROFILES,
        formats=MF_FORMATS,
    )
    for base, animation, inputs in itertools.product(
        (False, True), (False, True), (frozenset(), frozenset({"text"}))
    )
)

Refused = tuple[str, str, str]  # (function, requested, code)


# --- the rules, as independent predicates -----------------------------------------------------


def animation_conflict(tag: AvatarSupport, ask: str | None) -> bool:
    """The tag says the UE cannot animate, the hello says it will."""
    return tag is AvatarSupport.ASSISTED and ask == "ue"


def animation_wanted(tag: AvatarSupport, ask: str | None) -> str:
    """An explicit ask beats the tag unless they conflict; with no ask the tag decides, and
    with no tag the UE animates."""
    if ask is not None and not animation_conflict(tag, ask):
        return ask
    return "network" if tag is AvatarSupport.ASSISTED else "ue"


def expected_animation(tag: AvatarSupport, ask: str | None, network: NetworkFunctions) -> str:
    wanted = animation_wanted(tag, ask)
    return "network" if wanted == "network" and network.animation else "ue"


def expected_base(ask: str | None, network: NetworkFunctions) -> str:
    return "network" if ask == "network" and network.base_avatar_generation else "ue"


def expected_inputs(
    ask: str | None, inputs: tuple[str, ...], network: NetworkFunctions
) -> tuple[str, ...]:
    if ask == "ue":
        return ()
    if not inputs:
        return tuple(sorted(network.animation_data_inputs)) if ask == "network" else ()
    return tuple(i for i in inputs if i in network.animation_data_inputs)


def expected_animation_data(
    ask: str | None, inputs: tuple[str, ...], network: NetworkFunctions
) -> str:
    return "network" if expected_inputs(ask, inputs, network) else "ue"


def expected_refusals(
    tag: AvatarSupport,
    hello: Hello,
    network: NetworkFunctions,
    profiles_common: bool,
    formats_common: bool,
) -> set[Refused]:
    out: set[Refused] = set()
    if animation_conflict(tag, hello.animation):
        out.add(("animation", "ue", "conflict"))
    if animation_wanted(tag, hello.animation) == "network" and not network.animation:
        out.add(("animation", "network", "unsupported"))
    if hello.base_avatar_generation == "network" and not network.base_avatar_generation:
        out.add(("baseAvatarGeneration", "network", "unsupported"))
    inputs = hello.animation_inputs
    if hello.animation_data == "ue":
        if inputs:
            out.add(("animationInputs", ",".join(inputs), "conflict"))
    else:
        for name in inputs:
            if name not in network.animation_data_inputs:
                out.add(("animationInputs", name, "unsupported"))
        if hello.animation_data == "network" and not expected_inputs("network", inputs, network):
            out.add(("animationData", "network", "unsupported"))
    if not profiles_common:
        out.add(("animationProfiles", ",".join(hello.animation_profiles), "no-common-profile"))
    if not formats_common:
        out.add(("avatarFormats", ",".join(hello.avatar_formats), "no-common-format"))
    return out


# --- the matrix ---------------------------------------------------------------------------------


def hellos() -> Iterator[tuple[Hello, tuple[str, ...] | None, tuple[str, ...] | None]]:
    for animation, base, data, inputs, (profiles, agreed_p), (
        formats,
        agreed_f,
    ) in itertools.product(ASKS, ASKS, ASKS, INPUT_CASES, PROFILE_CASES, FORMAT_CASES):
        hello = Hello(
            id="h",
            role="both",
            animation=animation,
            base_avatar_generation=base,
            animation_data=data,
            animation_inputs=inputs,
            animation_profiles=profiles,
            avatar_formats=formats,
        )
        yield hello, agreed_p, agreed_f


def network_id(network: NetworkFunctions) -> str:
    inputs = "+".join(sorted(network.animation_data_inputs)) or "no-inputs"
    return f"base={network.base_avatar_generation}-anim={network.animation}-{inputs}"


@pytest.mark.parametrize("network", NETWORKS, ids=network_id)
@pytest.mark.parametrize("tag", TAGS, ids=str)
def test_negotiation_matrix(tag: AvatarSupport, network: NetworkFunctions) -> None:
    cells = 0
    for hello, agreed_profiles, agreed_formats in hellos():
        cells += 1
        result = negotiate(AvatarFeatureTags(tag), hello, network)
        where = f"{tag} {hello!r}"
        assert result.animation == expected_animation(tag, hello.animation, network), where
        assert result.rendering == result.animation, where
        assert result.base_avatar_generation == expected_base(
            hello.base_avatar_generation, network
        ), where
        assert result.animation_data == expected_animation_data(
            hello.animation_data, hello.animation_inputs, network
        ), where
        assert result.animation_inputs == expected_inputs(
            hello.animation_data, hello.animation_inputs, network
        ), where
        assert result.animation_profiles == (agreed_profiles or ()), where
        assert result.avatar_formats == (agreed_formats or ()), where
        got = {(r.function.value, r.requested, r.code.value) for r in result.refused}
        assert len(got) == len(result.refused), where  # no refusal twice
        assert got == expected_refusals(
            tag, hello, network, agreed_profiles is not None, agreed_formats is not None
        ), where
        for refusal in result.refused:  # the reason names what was asked
            assert refusal.requested.split(",")[0] in refusal.reason or (
                refusal.requested in ("ue", "network")
            ), where
        # Invariants: the network never takes a function it does not have.
        if not network.animation:
            assert result.animation == "ue", where
        if not network.base_avatar_generation:
            assert result.base_avatar_generation == "ue", where
        assert set(result.animation_inputs) <= network.animation_data_inputs, where
    assert cells == 3 * 3 * 3 * 4 * 3 * 3


# --- the cases of the brief, spelled out -------------------------------------------------------

FULL = NetworkFunctions(
    base_avatar_generation=True,
    animation_data_inputs=frozenset({"text"}),
    animation=True,
    profiles=MF_PROFILES,
    formats=MF_FORMATS,
)
UE_ONLY = NetworkFunctions(profiles=MF_PROFILES, formats=MF_FORMATS)


def test_network_animation_with_a_vendor_format_on_a_ue_only_mf_is_refused_twice() -> None:
    hello = Hello(
        id="h", role="both", animation="network", avatar_formats=("model/x-vendor-avatar",)
    )
    result = negotiate(AvatarFeatureTags(), hello, UE_ONLY)
    assert result.animation == "ue"
    assert {(r.function, r.code) for r in result.refused} == {
        ("animation", "unsupported"),
        ("avatarFormats", "no-common-format"),
    }
    formats = next(r for r in result.refused if r.function == "avatarFormats")
    assert "model/x-vendor-avatar" in formats.reason and "model/gltf-binary" in formats.reason


def test_an_old_hello_on_a_full_mf_gets_ue_centric_defaults() -> None:
    hello = Hello(id="h", role="both", animation="ue")
    result = negotiate(AvatarFeatureTags(), hello, FULL)
    assert (result.base_avatar_generation, result.animation_data, result.animation) == (
        "ue",
        "ue",
        "ue",
    )
    assert result.refused == ()


def test_an_assisted_ue_is_animated_and_rendered_by_the_network() -> None:
    tags = avatar_feature_tags('<sip:ue@10.0.0.1>;+sip.3gpp-avatar-support="avatar-assisted"')
    result = negotiate(tags, Hello(id="h", role="receiver"), FULL)
    assert (result.animation, result.rendering, result.refused) == ("network", "network", ())


def test_renegotiation_replaces_the_previous_agreement() -> None:
    first = negotiate(AvatarFeatureTags(), Hello(id="h1", role="both", animation="network"), FULL)
    second = negotiate(AvatarFeatureTags(), Hello(id="h2", role="both", animation="ue"), FULL)
    assert (first.animation, second.animation) == ("network", "ue")


def test_capabilities_carry_the_agreement_and_round_trip() -> None:
    hello = Hello(
        id="ue1-1",
        role="sender",
        animation="network",
        animation_data="network",
        animation_inputs=("text", "voice"),
        base_avatar_generation="network",
        avatar_formats=("model/x-vendor-avatar",),
    )
    result = negotiate(AvatarFeatureTags(AvatarSupport.CAPABLE), hello, FULL)
    message = capabilities(
        result,
        message_id="mf-1",
        in_reply_to="ue1-1",
        session_id="s-1",
        max_message_size=65536,
        max_transfer_size=1 << 26,
    )
    assert (message.animation, message.rendering, message.base_avatar_generation) == (
        "network",
        "network",
        "network",
    )
    assert (message.animation_data, message.animation_inputs) == ("network", ("text",))
    assert {(r.function, r.requested, r.code) for r in message.refused} == {
        ("animationInputs", "voice", "unsupported"),
        ("avatarFormats", "model/x-vendor-avatar", "no-common-format"),
    }
    back = parse_message(dump_message(message))
    assert isinstance(back, Capabilities) and back == message


ALL_INPUTS = NetworkFunctions(
    animation_data_inputs=frozenset({"text", "voice", "video", "images"}),
    profiles=MF_PROFILES,
    formats=MF_FORMATS,
)


def test_voice_and_video_asked_together_video_drives_the_face() -> None:
    """One source drives a session's face: with both, video (the camera: face and head)."""
    hello = Hello(id="h", role="sender", animation_inputs=("voice", "text", "video"))
    result = negotiate(AvatarFeatureTags(), hello, ALL_INPUTS)
    assert (result.animation_data, result.animation_inputs) == ("network", ("text", "video"))
    assert [(r.function, r.requested, r.code) for r in result.refused] == [
        ("animationInputs", "voice", "conflict")
    ]
    assert "video" in result.refused[0].reason
    # Asked alone, each is agreed.
    for alone in ("voice", "video"):
        only = negotiate(
            AvatarFeatureTags(), Hello(id="h", role="sender", animation_inputs=(alone,)), ALL_INPUTS
        )
        assert (only.animation_inputs, only.refused) == ((alone,), ())


def test_network_animation_data_without_a_list_takes_video_not_voice_unrefused() -> None:
    hello = Hello(id="h", role="sender", animation_data="network")
    result = negotiate(AvatarFeatureTags(), hello, ALL_INPUTS)
    assert result.animation_inputs == ("images", "text", "video")
    assert result.refused == ()  # the UE asked for no input by name
