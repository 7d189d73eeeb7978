"""H.264 over RTP, sans-IO (RFC 6184): packetizer, depacketizer, profile-level-id, SDP answer rules.

The RTP payload is one of (RFC 6184 section 5.2, the NAL unit type of its first octet)::

    1-23  a single NAL unit packet (section 5.6): the NAL unit as is
    24    STAP-A (section 5.7.1): [F|NRI|24] then (16-bit size, NAL unit) pairs
    28    FU-A (section 5.8): [F|NRI|28] [S|E|R|type] then a fragment of one NAL unit

STAP-B (25), MTAP (26, 27) and FU-B (29) belong to the interleaved mode (packetization-mode
2), which the MF does not serve: they are rejected as malformed. ``packetization-mode`` 0
(section 6.2) allows single NAL unit packets only; 1 (section 6.3) adds STAP-A and FU-A.

:class:`H264Packetizer` turns one access unit (Annex B byte stream or a list of NAL units) into
RTP payloads (the marker bit goes on the last, section 5.1). :class:`H264Depacketizer` takes
packets (sequence number, timestamp, marker, payload) and yields :class:`AccessUnit` s: an
access unit ends at the marker bit or when the timestamp changes (a lost marker); a gap in the
sequence numbers marks the unit ``complete=False`` and drops the NAL unit whose FU-A sequence
it broke (section 5.8: "the receiver MUST discard ... fragments" of an incomplete FU). SPS (7)
and PPS (8) NAL units are remembered, whether they came in-band or in
``sprop-parameter-sets`` (section 8.1, :func:`parse_sprop_parameter_sets`), and are put in
front of an IDR access unit that lacks them, so a decoder can start at any keyframe.

:class:`ProfileLevelId` parses ``profile-level-id`` (section 8.1; the profile from
``profile_idc`` and the constraint flags of ``profile-iop``, table 5 of RFC 6184 and H.264
Annex A) and :func:`answer_h264_fmtp` applies the offer/answer rules of section 8.2.2: the
answer keeps the offered profile and ``packetization-mode`` (both are symmetric: a format
whose values differ is a different format), and answers a level no higher than the offered
one (a lower level is what the MF can receive, unless ``level-asymmetry-allowed``).

Every malformed input raises :class:`H264Error` (an :class:`~avatar_mf.rtp.errors.RtpError`),
nothing else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from avatar_mf.rtp.errors import RtpError

NAL_SLICE: Final = 1
NAL_IDR: Final = 5
NAL_SEI: Final = 6
NAL_SPS: Final = 7
NAL_PPS: Final = 8
NAL_AUD: Final = 9
STAP_A: Final = 24
FU_A: Final = 28
#: Types of the interleaved mode (RFC 6184 5.7.2, 5.7.3, 5.8): not served.
_INTERLEAVED: Final = frozenset({25, 26, 27, 29})
START_CODE: Final = b"\x00\x00\x00\x01"

PacketizationMode = Literal[0, 1]


class H264Error(RtpError):
    """A malformed H.264 payload, parameter or access unit (``reason`` is a metrics label)."""


def nal_type(nal: bytes) -> int:
    """The ``nal_unit_type`` of a NAL unit (the low 5 bits of its first octet)."""
    if not nal:
        raise H264Error("h264_empty", "empty NAL unit")
    return nal[0] & 0x1F


def split_annexb(stream: bytes) -> list[bytes]:
    """The NAL units of an H.264 Annex B byte stream (3- or 4-octet start codes)."""
    starts: list[int] = []
    i = stream.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = stream.find(b"\x00\x00\x01", i + 3)
    if not starts:
        raise H264Error("h264_annexb", "no start code")
    ends = starts[1:] + [len(stream)]
    # a NAL unit ends with its rbsp stop bit: trailing zero octets belong to the next start
    # code (the 4-octet form) or are trailing_zero_8bits
    nals = [stream[a + 3 : b].rstrip(b"\x00") for a, b in zip(starts, ends, strict=True)]
    nals = [n for n in nals if n]
    if not nals:
        raise H264Error("h264_annexb", "no NAL unit")
    return nals


def join_annexb(nals: Iterable[bytes]) -> bytes:
    """An Annex B byte stream of ``nals`` (4-octet start codes)."""
    return b"".join(START_CODE + nal for nal in nals)


class H264Packetizer:
    """RTP payloads for H.264 access units (RFC 6184 sections 5.6-5.8).

    ``mode`` 0: one NAL unit per packet; a NAL unit larger than ``mtu`` raises
    :class:`H264Error` (the encoder must cut slices that small). ``mode`` 1: NAL units that fit
    are aggregated in STAP-A packets (several small ones, e.g. SPS + PPS) or sent alone; larger
    ones are fragmented in FU-A packets. ``mtu`` bounds the payload size.
    """

    def __init__(self, *, mode: PacketizationMode = 1, mtu: int = 1200) -> None:
        if mode not in (0, 1):
            raise H264Error("h264_mode", f"packetization-mode {mode} not served")
        if mtu < 16:
            raise H264Error("h264_mtu", str(mtu))
        self.mode = mode
        self.mtu = mtu

    def packetize(self, access_unit: bytes | Sequence[bytes]) -> list[bytes]:
        """The payloads of one access unit, in order (the last one takes the marker bit)."""
        nals = split_annexb(access_unit) if isinstance(access_unit, bytes) else list(access_unit)
        for nal in nals:
            kind = nal_type(nal)
            if kind in _INTERLEAVED or kind in (STAP_A, FU_A) or kind == 0 or kind > 23:
                raise H264Error("h264_nal_type", f"cannot send NAL unit type {kind}")
        if self.mode == 0:
            for nal in nals:
                if len(nal) > self.mtu:
                    raise H264Error("h264_too_large", f"{len(nal)} > {self.mtu} in mode 0")
            return list(nals)
        out: list[bytes] = []
        group: list[bytes] = []

        def flush() -> None:
            if len(group) == 1:
                out.append(group[0])
            elif group:
                nri = max(n[0] & 0x60 for n in group)
                body = b"".join(len(n).to_bytes(2, "big") + n for n in group)
                out.append(bytes([nri | STAP_A]) + body)
            group.clear()

        for nal in nals:
            if len(nal) > self.mtu:
                flush()
                out.extend(self._fragment(nal))
                continue
            size = 1 + sum(2 + len(n) for n in group) + 2 + len(nal)
            if group and size > self.mtu:
                flush()
            group.append(nal)
        flush()
        return out

    def _fragment(self, nal: bytes) -> list[bytes]:
        indicator = (nal[0] & 0xE0) | FU_A
        kind = nal[0] & 0x1F
        body = nal[1:]
        step = self.mtu - 2
        chunks = [body[i : i + step] for i in range(0, len(body), step)]
        out: list[bytes] = []
        for n, chunk in enumerate(chunks):
            header = kind | (0x80 if n == 0 else 0) | (0x40 if n == len(chunks) - 1 else 0)
            out.append(bytes([indicator, header]) + chunk)
        return out


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One reassembled access unit (all NAL units of one RTP timestamp).

    ``complete`` is false when a packet of it was lost (the unit may still decode, with
    artefacts; a decoder may prefer to wait for the next keyframe). ``keyframe``: it holds an
    IDR slice.
    """

    timestamp: int
    nals: tuple[bytes, ...]
    complete: bool = True

    @property
    def keyframe(self) -> bool:
        return any(nal_type(n) == NAL_IDR for n in self.nals)

    def annexb(self) -> bytes:
        """The unit as an Annex B byte stream, what a decoder takes."""
        return join_annexb(self.nals)


@dataclass(slots=True)
class _Pending:
    timestamp: int
    nals: list[bytes] = field(default_factory=list)
    complete: bool = True
    fu: bytearray | None = None


def parse_sprop_parameter_sets(value: str) -> tuple[bytes, ...]:
    """The NAL units of ``sprop-parameter-sets`` (RFC 6184 8.1: base64, comma separated)."""
    out: list[bytes] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nal = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise H264Error("h264_sprop", f"bad base64 {part!r}") from exc
        if not nal or nal_type(nal) not in (NAL_SPS, NAL_PPS):
            raise H264Error("h264_sprop", "not an SPS or PPS")
        out.append(nal)
    return tuple(out)


def format_sprop_parameter_sets(nals: Iterable[bytes]) -> str:
    """The ``sprop-parameter-sets`` value for SPS/PPS NAL units."""
    return ",".join(base64.b64encode(n).decode("ascii") for n in nals)


class H264Depacketizer:
    """Access units from RTP packets of one H.264 stream (see the module docstring).

    ``parameter_sets`` are SPS/PPS known out of band (``sprop-parameter-sets``). ``mode``
    bounds what is accepted: in mode 0 a STAP-A or FU-A is malformed.
    """

    def __init__(
        self, *, mode: PacketizationMode = 1, parameter_sets: Iterable[bytes] = ()
    ) -> None:
        self.mode = mode
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self._pending: _Pending | None = None
        self._last_seq: int | None = None
        #: FU-A sequences dropped because a fragment was lost or out of order.
        self.fragments_dropped = 0
        for nal in parameter_sets:
            self._remember(nal)

    def _remember(self, nal: bytes) -> None:
        kind = nal_type(nal)
        if kind == NAL_SPS:
            self.sps = nal
        elif kind == NAL_PPS:
            self.pps = nal

    def push(self, sequence: int, timestamp: int, marker: bool, payload: bytes) -> list[AccessUnit]:
        """Feed one packet (in sequence order; the jitter buffer reorders); return the access
        units it completes (zero, one, or two when a lost marker is detected by a new
        timestamp). Raises :class:`H264Error` for a malformed payload (the packet is ignored,
        the unit in progress is marked incomplete)."""
        out: list[AccessUnit] = []
        gap = self._last_seq is not None and sequence != (self._last_seq + 1) & 0xFFFF
        self._last_seq = sequence & 0xFFFF
        pending = self._pending
        if pending is not None and pending.timestamp != timestamp:
            pending.complete = False  # the marker packet was lost
            self._finish(out)
            pending = None
        if pending is None:
            pending = self._pending = _Pending(timestamp, complete=not gap)
        elif gap:
            pending.complete = False
            if pending.fu is not None:
                pending.fu = None
                self.fragments_dropped += 1
        try:
            self._payload(pending, payload)
        except H264Error:
            pending.complete = False
            if pending.fu is not None:
                pending.fu = None
                self.fragments_dropped += 1
            raise
        finally:
            if marker and self._pending is pending:
                self._finish(out)
        return out

    def _payload(self, pending: _Pending, payload: bytes) -> None:
        if not payload:
            raise H264Error("h264_empty", "empty payload")
        if payload[0] & 0x80:
            raise H264Error("h264_forbidden_bit", "F bit set")
        kind = payload[0] & 0x1F
        if kind == 0 or kind in _INTERLEAVED or kind > FU_A:
            raise H264Error("h264_nal_type", f"payload type {kind} not served")
        if kind in (STAP_A, FU_A) and self.mode == 0:
            raise H264Error("h264_mode", f"type {kind} in packetization-mode 0")
        if kind == STAP_A:
            self._stap(pending, payload)
        elif kind == FU_A:
            self._fu(pending, payload)
        else:
            self._nal(pending, payload)

    def _nal(self, pending: _Pending, nal: bytes) -> None:
        if pending.fu is not None:  # a NAL unit inside an unfinished FU: the end was lost
            pending.fu = None
            pending.complete = False
            self.fragments_dropped += 1
        self._remember(nal)
        pending.nals.append(nal)

    def _stap(self, pending: _Pending, payload: bytes) -> None:
        nals: list[bytes] = []
        i = 1
        while i < len(payload):
            if i + 2 > len(payload):
                raise H264Error("h264_stap", "truncated size")
            size = int.from_bytes(payload[i : i + 2], "big")
            i += 2
            if size == 0 or i + size > len(payload):
                raise H264Error("h264_stap", f"bad NAL unit size {size}")
            nal = payload[i : i + size]
            kind = nal[0] & 0x1F
            if nal[0] & 0x80 or kind == 0 or kind > 23:
                raise H264Error("h264_stap", f"NAL unit type {kind} inside STAP-A")
            nals.append(nal)
            i += size
        if not nals:
            raise H264Error("h264_stap", "empty STAP-A")
        for nal in nals:
            self._nal(pending, nal)

    def _fu(self, pending: _Pending, payload: bytes) -> None:
        if len(payload) < 3:
            raise H264Error("h264_fu", "truncated FU-A")
        header = payload[1]
        start, end, kind = bool(header & 0x80), bool(header & 0x40), header & 0x1F
        if start and end:
            raise H264Error("h264_fu", "S and E both set")
        if kind == 0 or kind > 23:
            raise H264Error("h264_fu", f"fragmented type {kind}")
        if start:
            if pending.fu is not None:
                self.fragments_dropped += 1
                pending.complete = False
            pending.fu = bytearray([(payload[0] & 0xE0) | kind])
            pending.fu += payload[2:]
            return
        if pending.fu is None or (pending.fu[0] & 0x1F) != kind:
            # the start was lost: discard this fragment (section 5.8)
            pending.complete = False
            pending.fu = None
            return
        pending.fu += payload[2:]
        if end:
            nal = bytes(pending.fu)
            pending.fu = None
            self._remember(nal)
            pending.nals.append(nal)

    def _finish(self, out: list[AccessUnit]) -> None:
        pending = self._pending
        self._pending = None
        if pending is None:
            return
        if pending.fu is not None:
            self.fragments_dropped += 1
            pending.complete = False
        nals = pending.nals
        if not nals:
            return
        kinds = {n[0] & 0x1F for n in nals}
        if NAL_IDR in kinds:
            prefix = [
                ps
                for ps, kind in ((self.sps, NAL_SPS), (self.pps, NAL_PPS))
                if ps is not None and kind not in kinds
            ]
            nals = prefix + nals
        out.append(AccessUnit(pending.timestamp, tuple(nals), pending.complete))


# -- profile-level-id (RFC 6184 section 8.1, table 5) and offer/answer (section 8.2.2) --------

#: (profile_idc, mask over profile-iop, value) -> profile name, first match wins (table 5).
_PROFILES: Final[tuple[tuple[int, int, int, str], ...]] = (
    (0x42, 0x4F, 0x40, "constrained-baseline"),
    (0x4D, 0x8F, 0x80, "constrained-baseline"),
    (0x58, 0xCF, 0xC0, "constrained-baseline"),
    (0x42, 0x4F, 0x00, "baseline"),
    (0x58, 0xCF, 0x80, "baseline"),
    (0x4D, 0xAF, 0x00, "main"),
    (0x58, 0xCF, 0x00, "extended"),
    (0x64, 0xFF, 0x0C, "constrained-high"),
    (0x64, 0xFF, 0x00, "high"),
    (0x6E, 0xFF, 0x00, "high-10"),
    (0x7A, 0xFF, 0x00, "high-422"),
    (0xF4, 0xFF, 0x00, "high-444"),
    (0x6E, 0xFF, 0x10, "high-10-intra"),
    (0x7A, 0xFF, 0x10, "high-422-intra"),
    (0xF4, 0xFF, 0x10, "high-444-intra"),
    (0x2C, 0xFF, 0x10, "cavlc-444-intra"),
)
#: Profiles the MF's decoder (FFmpeg) receives: 8-bit 4:2:0.
DECODABLE_PROFILES: Final = frozenset(
    {"constrained-baseline", "baseline", "main", "constrained-high", "high"}
)
#: The highest level the MF asks to receive (3.1: 1280x720 at 30 fps).
MAX_LEVEL_IDC: Final = 31
#: What the MF offers and assumes without a profile-level-id (RFC 6184 8.1: "42000A").
DEFAULT_PROFILE_LEVEL_ID: Final = "42000a"


@dataclass(frozen=True, slots=True)
class ProfileLevelId:
    """``profile-level-id``: ``profile_idc``, ``profile_iop`` (constraint flags), ``level_idc``."""

    profile_idc: int
    profile_iop: int
    level_idc: int

    @classmethod
    def parse(cls, text: str) -> ProfileLevelId:
        text = text.strip()
        if len(text) != 6:
            raise H264Error("h264_profile_level_id", f"{text!r} is not 6 hex digits")
        try:
            value = bytes.fromhex(text)
        except ValueError as exc:
            raise H264Error("h264_profile_level_id", f"{text!r} is not hex") from exc
        return cls(value[0], value[1], value[2])

    def __str__(self) -> str:
        return f"{self.profile_idc:02x}{self.profile_iop:02x}{self.level_idc:02x}"

    @property
    def profile(self) -> str | None:
        """The profile name (table 5), or ``None`` for an unknown combination."""
        for idc, mask, value, name in _PROFILES:
            if self.profile_idc == idc and self.profile_iop & mask == value:
                return name
        return None

    @property
    def level(self) -> float:
        """The level as a number (1b is 1.05: between 1 and 1.1), RFC 6184 8.1."""
        if self.level_idc == 9 or (
            self.level_idc == 11
            and self.profile_iop & 0x10
            and self.profile in ("baseline", "constrained-baseline", "main", "extended")
        ):
            return 1.05
        return self.level_idc / 10

    def with_level_idc(self, level_idc: int) -> ProfileLevelId:
        """The same profile at another level (constraint_set3 cleared unless it meant 1b)."""
        iop = self.profile_iop
        if self.level == 1.05 and level_idc != 11:
            iop &= ~0x10 & 0xFF
        return ProfileLevelId(self.profile_idc, iop, level_idc)


def answer_h264_fmtp(
    offered: Mapping[str, str], *, max_level_idc: int = MAX_LEVEL_IDC
) -> dict[str, str] | None:
    """The fmtp the MF answers an offered H.264 format with, or ``None`` when it cannot.

    RFC 6184 8.2.2: ``packetization-mode`` (default 0) is echoed and must be 0 or 1; the
    profile (from ``profile-level-id``, default ``42000A``) is echoed and must be one the MF
    decodes; the level answered is the lower of the offered one and ``max_level_idc`` (the
    answerer may only lower it), or the MF's own with ``level-asymmetry-allowed=1``.
    Raises nothing: a malformed parameter means the format is not served.
    """
    params = {k.lower(): v.strip() for k, v in offered.items()}
    mode_text = params.get("packetization-mode", "0") or "0"
    if mode_text not in ("0", "1"):
        return None
    try:
        plid = ProfileLevelId.parse(params.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID))
    except H264Error:
        return None
    if plid.profile not in DECODABLE_PROFILES:
        return None
    asymmetric = params.get("level-asymmetry-allowed") == "1"
    if asymmetric:
        level_idc = max_level_idc
    elif plid.level_idc == 9 or plid.level == 1.05:
        level_idc = plid.level_idc
    else:
        level_idc = min(plid.level_idc, max_level_idc)
    answer = {
        "profile-level-id": str(plid.with_level_idc(level_idc)),
        "packetization-mode": mode_text,
    }
    if asymmetric:
        answer["level-asymmetry-allowed"] = "1"
    return answer
