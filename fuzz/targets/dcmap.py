"""Data channel attributes: :func:`avatar_mf.sdp.datachannel.parse_dcmap`, ``parse_dcsa`` and
``parse_fingerprint`` on one attribute value.

The values reach these parsers from :func:`~avatar_mf.sdp.model.parse_sdp`: UTF-8 text without
CR, LF or NUL; other inputs are skipped. Documented outcome: a value or
:class:`~avatar_mf.sdp.errors.SdpError`. A parsed dcmap written back by ``format_dcmap`` must
parse to the same stream.
"""

from __future__ import annotations

from avatar_mf.sdp.datachannel import format_dcmap, parse_dcmap, parse_dcsa, parse_fingerprint
from avatar_mf.sdp.errors import SdpError


def fuzz_one(data: bytes) -> None:
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    if any(ch in value for ch in "\r\n\0"):
        return
    try:
        dcmap = parse_dcmap(value)
    except SdpError:
        pass
    else:
        again = parse_dcmap(format_dcmap(dcmap))
        if again != dcmap:
            raise AssertionError(f"format_dcmap round trip: {dcmap!r} -> {again!r}")
    try:
        parse_dcsa(value)
    except SdpError:
        pass
    try:
        parse_fingerprint(value)
    except SdpError:
        pass
