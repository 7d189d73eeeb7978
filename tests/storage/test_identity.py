"""Subscriber identities in their normal form."""

from __future__ import annotations

import pytest

from avatar_mf.storage import InvalidIdentityError, normalize_identity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:alice@ims.example", "sip:alice@ims.example"),
        ("SIP:alice@IMS.Example", "sip:alice@ims.example"),
        ("sips:alice@ims.example:5061", "sip:alice@ims.example"),
        ("<sip:alice@ims.example;transport=tcp?subject=x>", "sip:alice@ims.example"),
        ("  sip:alice:secret@ims.example  ", "sip:alice@ims.example"),
        ("sip:Alice@ims.example", "sip:Alice@ims.example"),  # user parts are case-sensitive
        ("sip:%61lice@ims.example", "sip:alice@ims.example"),  # escaping is canonical
        ("sip:+15551234;npdi@ims.example;user=phone", "sip:+15551234;npdi@ims.example"),
        ("sip:alice@[2001:DB8::1]", "sip:alice@[2001:db8::1]"),
        ("tel:+1-555-1234", "tel:+15551234"),
        ("tel:+1(555)123.4;ext=9", "tel:+15551234"),
        ("tel:1234;phone-context=IMS.Example", "tel:1234;phone-context=ims.example"),
    ],
)
def test_normal_form(text: str, expected: str) -> None:
    assert normalize_identity(text) == expected
    assert normalize_identity(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "sip:ims.example",
        "tel:1234",
        "tel:+",
        "tel:+12a",
        "mailto:a@b",
        "sip:alice@",
        "<>",
        "sip:" + "a" * 600 + "@x",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(InvalidIdentityError) as caught:
        normalize_identity(text)
    assert caught.value.status == 400
