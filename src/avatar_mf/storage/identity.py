"""Subscriber identities: the normal form used for avatar owners, grantees and call parties.

TS 22.156 asks the network to identify the subscriber who has the right to use an avatar. The
identity the IMS core asserts (P-Asserted-Identity) is a SIP or tel URI; two spellings of the
same subscriber must compare equal, so every identity is stored and compared in this form:

* ``sip:user@host``: the user part as written (RFC 3261 19.1.4: user parts compare
  case-sensitively), escaped canonically; the host lower-cased; port, password, parameters and
  headers dropped. ``sips:`` is folded to ``sip:``: it names how to reach the subscriber, not who
  the subscriber is. A URI without a user part is refused: it names a host, not a subscriber.
* ``tel:+15551234``: a global number (RFC 3966) with its visual separators ``-.()`` removed and
  every parameter dropped. A local number keeps its ``phone-context`` (lower-cased), without
  which it is ambiguous: ``tel:1234;phone-context=ims.example``; one without is refused.
"""

from __future__ import annotations

from avatar_mf.sip.errors import SipError
from avatar_mf.sip.uri import SipUri, TelUri, parse_uri
from avatar_mf.storage.errors import InvalidIdentityError

__all__ = ["MAX_IDENTITY_LENGTH", "normalize_identity"]

#: Longest identity accepted, in characters (before normalisation).
MAX_IDENTITY_LENGTH = 512

_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")
_LOCAL_DIGITS = frozenset("0123456789*#abcdefABCDEF")


def normalize_identity(text: str) -> str:
    """The normal form of a subscriber identity (see the module docstring).

    Accepts the URI bare or in angle brackets (``<sip:alice@ims.example>``). Raises
    :class:`~avatar_mf.storage.errors.InvalidIdentityError` (400) for anything else.
    """
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value or len(value) > MAX_IDENTITY_LENGTH:
        raise InvalidIdentityError(f"not a subscriber identity: {_cut(text)}")
    try:
        uri = parse_uri(value)
    except SipError:
        raise InvalidIdentityError(f"not a SIP or tel URI: {_cut(text)}") from None
    if isinstance(uri, SipUri):
        if not uri.user:
            raise InvalidIdentityError(f"SIP identity without a user part: {_cut(text)}")
        return str(SipUri("sip", uri.user, uri.host.lower()))
    if isinstance(uri, TelUri):
        return _normalize_tel(uri, text)
    raise InvalidIdentityError(f"identity must be a sip:, sips: or tel: URI: {_cut(text)}")


def _normalize_tel(uri: TelUri, text: str) -> str:
    number = uri.number.translate(_VISUAL_SEPARATORS)
    if number.startswith("+"):
        if len(number) < 2 or not number[1:].isascii() or not number[1:].isdigit():
            raise InvalidIdentityError(f"not a global telephone number: {_cut(text)}")
        return f"tel:{number}"
    if not number or not _LOCAL_DIGITS.issuperset(number):
        raise InvalidIdentityError(f"not a telephone number: {_cut(text)}")
    context = uri.param("phone-context")
    if not context:
        raise InvalidIdentityError(f"local telephone number without phone-context: {_cut(text)}")
    return f"tel:{number.upper()};phone-context={context.lower()}"


def _cut(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
