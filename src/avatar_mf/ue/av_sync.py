"""Audio/video sync as a receiver measures it: RTP time -> the sender's wall clock by its RTCP
SRs (RFC 3550 6.4.1), and the onsets to compare (speech in the audio, motion in the video).

Each SR pairs an NTP wall-clock time with the same instant in the stream's RTP clock;
:meth:`SrMapping.wall` maps any RTP timestamp of that stream to the sender's wall clock (the
signed 32-bit difference handles wrap-around). Two streams whose SRs share one wall clock (the
MF's audio and video of a session) are compared by mapping both onsets to it:
``skew = audio onset - video onset`` (positive: the sound comes after the picture, "audio
behind"; ITU-R BT.1359 bounds: 45 ms ahead, 125 ms behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatar_mf.codecs.video import Picture

NTP_UNIX_OFFSET = 2208988800


@dataclass(frozen=True, slots=True)
class SrMapping:
    """One SR: ``wall_time`` (Unix seconds) is RTP timestamp ``rtp_timestamp``."""

    wall_time: float
    rtp_timestamp: int
    clock_rate: int

    @classmethod
    def of(cls, ntp_timestamp: int, rtp_timestamp: int, clock_rate: int) -> SrMapping:
        seconds = (ntp_timestamp >> 32) - NTP_UNIX_OFFSET + (ntp_timestamp & 0xFFFFFFFF) / 2**32
        return cls(seconds, rtp_timestamp, clock_rate)

    def wall(self, rtp_timestamp: int) -> float:
        diff = (rtp_timestamp - self.rtp_timestamp) & 0xFFFFFFFF
        if diff >= 0x80000000:
            diff -= 0x100000000
        return self.wall_time + diff / self.clock_rate


def sound_onset(
    frames: Sequence[tuple[int, bytes]], *, level: int = 500, rate: int = 16000
) -> tuple[int, float] | None:
    """The first loud sample of 16 kHz PCM frames ``(rtp timestamp, pcm)``: (the frame's
    timestamp, seconds into the frame), or None when all is quiet."""
    for timestamp, pcm in frames:
        samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
        loud = np.nonzero(samples > level)[0]
        if len(loud):
            return timestamp, float(loud[0]) / rate
    return None


def region_changes(
    pictures: Sequence[tuple[int, Picture]], region: tuple[float, float, float, float]
) -> list[float]:
    """Mean absolute luma difference of each picture from the first, inside ``region``
    (left, top, right, bottom as fractions of the picture)."""
    if not pictures:
        return []
    left, top, right, bottom = region

    def crop(p: Picture) -> np.ndarray:
        y = p.luma().astype(np.int16)
        h, w = y.shape
        return y[int(top * h) : int(bottom * h), int(left * w) : int(right * w)]

    base = crop(pictures[0][1])
    return [float(np.abs(crop(p) - base).mean()) for _, p in pictures]


def motion_onset(
    pictures: Sequence[tuple[int, Picture]],
    region: tuple[float, float, float, float],
    *,
    threshold: float = 2.0,
) -> int | None:
    """The RTP timestamp of the first picture whose ``region`` differs from the first
    picture's by more than ``threshold`` (mean luma levels), or None."""
    for (timestamp, _), change in zip(pictures, region_changes(pictures, region), strict=True):
        if change > threshold:
            return timestamp
    return None
