"""Contact feature tags (RFC 3840 section 9) and the caller's avatar support (TS 26.264)."""

from __future__ import annotations

import pytest

from avatar_mf.sip.feature_tags import (
    AvatarFeatureTags,
    AvatarSupport,
    FeatureTag,
    avatar_feature_tags,
    feature_tags,
)

URI = "<sip:ue1@10.0.0.1:5060;transport=udp>"


@pytest.mark.parametrize(
    ("contact", "support"),
    [
        (URI + ';+sip.3gpp-avatar-support="avatar-capable"', AvatarSupport.CAPABLE),
        (URI + ';+sip.3gpp-avatar-support="avatar-assisted"', AvatarSupport.ASSISTED),
        # Bare (unquoted) values, as some UEs send them.
        (URI + ";+sip.3gpp-avatar-support=avatar-assisted", AvatarSupport.ASSISTED),
        # Names and token values are case-insensitive.
        (URI + ';+SIP.3GPP-Avatar-Support="Avatar-Capable"', AvatarSupport.CAPABLE),
        # LWS around ';' and '='.
        (URI + ' ; +sip.3gpp-avatar-support = "avatar-assisted"', AvatarSupport.ASSISTED),
        # Both values listed: the UE can animate itself.
        (URI + ';+sip.3gpp-avatar-support="avatar-assisted,avatar-capable"', AvatarSupport.CAPABLE),
        # Absent, unknown value, negated value, no value at all.
        (URI, AvatarSupport.UNKNOWN),
        (URI + ';+sip.3gpp-avatar-support="avatar-superb"', AvatarSupport.UNKNOWN),
        (URI + ';+sip.3gpp-avatar-support="!avatar-capable"', AvatarSupport.UNKNOWN),
        (URI + ";+sip.3gpp-avatar-support", AvatarSupport.UNKNOWN),
        # The tag is a header parameter, not a URI parameter.
        ("<sip:ue1@10.0.0.1;+sip.3gpp-avatar-support=avatar-capable>", AvatarSupport.UNKNOWN),
        # addr-spec form: parameters after ';' belong to the header (RFC 3261 20.10).
        ("sip:ue1@10.0.0.1;+sip.3gpp-avatar-support=avatar-capable", AvatarSupport.CAPABLE),
        # Unparseable Contact, empty Contact.
        (
            '"unterminated <sip:ue1@10.0.0.1>;+sip.3gpp-avatar-support=avatar-capable',
            AvatarSupport.UNKNOWN,
        ),
        ("", AvatarSupport.UNKNOWN),
    ],
)
def test_avatar_support(contact: str, support: AvatarSupport) -> None:
    assert avatar_feature_tags(contact).avatar_support is support


@pytest.mark.parametrize(
    ("contact", "datachannel"),
    [
        (URI + ';+sip.app-subtype="webrtc-datachannel"', True),
        (URI + ";+sip.app-subtype=webrtc-datachannel", True),
        (URI + ';+sip.app-subtype="foo,WebRTC-DataChannel"', True),
        (URI + ';+sip.app-subtype="foo"', False),
        (URI + ";+sip.app-subtype", False),
        (URI, False),
    ],
)
def test_datachannel_subtype(contact: str, datachannel: bool) -> None:
    assert avatar_feature_tags(contact).datachannel is datachannel


def test_several_tags_at_once() -> None:
    contact = (
        '"UE 1" <sip:ue1@10.0.0.1:5060>;expires=3600;q=0.7;video;'
        '+sip.app-subtype="webrtc-datachannel";+sip.3gpp-avatar-support="avatar-assisted";'
        '+sip.instance="<urn:gsma:imei:35-209900-176148-1>";+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'
    )
    assert avatar_feature_tags(contact) == AvatarFeatureTags(AvatarSupport.ASSISTED, True)
    tags = feature_tags(contact)
    # expires and q are not feature tags; video is a base tag (boolean, no value).
    assert [t.name for t in tags] == [
        "video",
        "+sip.app-subtype",
        "+sip.3gpp-avatar-support",
        "+sip.instance",
        "+g.3gpp.icsi-ref",
    ]
    assert tags[0] == FeatureTag("video", ())
    # A string value keeps its case and loses its angle brackets.
    assert tags[3].values == ("urn:gsma:imei:35-209900-176148-1",)


def test_a_tag_with_no_value_is_boolean_true() -> None:
    (tag,) = feature_tags(URI + ";+sip.foo")
    assert tag.is_true
    (tag,) = feature_tags(URI + ';+sip.foo="TRUE"')
    assert tag.is_true
    (tag,) = feature_tags(URI + ';+sip.foo="FALSE"')
    assert not tag.is_true
    (tag,) = feature_tags(URI + ';audio="!true"')
    assert tag.values == ("!true",) and not tag.is_true


def test_value_lists_keep_wire_order() -> None:
    (tag,) = feature_tags(URI + ';methods="INVITE,BYE, OPTIONS"')
    assert tag.values == ("invite", "bye", "options")
    assert tag.has("Bye") and not tag.has("update")


def test_default_record_is_unknown_without_data_channel() -> None:
    assert AvatarFeatureTags() == AvatarFeatureTags(AvatarSupport.UNKNOWN, False)
