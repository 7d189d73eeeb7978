"""The test UE's offered media lines: one builder for its audio and its video m-lines.

An offered m-line (RFC 4566 section 5.14, RFC 3264 section 5.1) lists its payload types in
preference order; each has its ``a=rtpmap`` and, when it has parameters, its ``a=fmtp``
(RFC 4566 section 6), and on an AVPF profile the ``a=rtcp-fb`` values it takes (RFC 4585
section 4.2). The attributes of the whole line (ptime, rtcp-mux, the direction) follow. A
WebRTC m-line gets an ``a=mid`` first: :func:`avatar_mf.ue.offer.build_offer` BUNDLEs it with
the data channel, whose m-line gives it its port, c= and transport attributes (RFC 8843
section 7.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from avatar_mf.sdp.model import Attribute, Connection, MediaDescription


@dataclass(frozen=True, slots=True)
class OfferedPayload:
    """One payload type the UE offers: its rtpmap encoding (``"PCMU/8000"``), fmtp
    (empty: none) and rtcp-fb values."""

    payload_type: int
    encoding: str
    fmtp: str = ""
    feedback: tuple[str, ...] = ()


def offer_line(
    media: str,
    payloads: Sequence[OfferedPayload],
    line_attrs: Sequence[Attribute],
    *,
    port: int,
    host: str,
    proto: str,
    mid: str | None = None,
) -> MediaDescription:
    """The m-line of ``media`` offering ``payloads`` in order, then ``line_attrs``, with a
    ``a=mid:`` first when ``mid`` is given (see the module docstring)."""
    attrs: list[Attribute] = [] if mid is None else [Attribute("mid", mid)]
    for payload in payloads:
        pt = payload.payload_type
        attrs.append(Attribute("rtpmap", f"{pt} {payload.encoding}"))
        if payload.fmtp:
            attrs.append(Attribute("fmtp", f"{pt} {payload.fmtp}"))
        attrs += [Attribute("rtcp-fb", f"{pt} {value}") for value in payload.feedback]
    attrs += line_attrs
    return MediaDescription(
        media=media,
        port=port,
        proto=proto,
        formats=tuple(str(payload.payload_type) for payload in payloads),
        connections=(Connection("IN", "IP4", host),),
        attrs=tuple(attrs),
    )
