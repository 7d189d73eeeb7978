"""The last few pictures of a participant's RTP video stream, kept for ``avatar generate``
with ``source: video`` (issue 14: "points at its RTP video stream (a few frames are taken)").

Sans-IO and bounded: :class:`RecentPictures` keeps at most :data:`SPREAD_COUNT` pictures
about :data:`SPREAD_STEP` seconds apart over the last :data:`SPREAD_SPAN` seconds (RTP time,
90 kHz, RFC 3550 wrap-around), the newest always among them (newest wins: while the newest
is closer than the step to the one before it, a new picture replaces it), plus the newest key frame
(IDR, the encoder's best picture) while it is at most :data:`KEY_AGE` seconds old. A
timestamp going backwards (a new stream) starts over. Only references to the decoded
pictures are kept (I420, 460 kB at 640x480: under 3 MB a call); they go with the session.
"""

from __future__ import annotations

from avatar_mf.pipeline.frames import VideoIn

#: Most pictures spread over the span (the key frame comes on top).
SPREAD_COUNT = 5
#: Seconds between kept pictures.
SPREAD_STEP = 0.25
#: Seconds of video the spread covers.
SPREAD_SPAN = 1.0
#: Seconds the newest key frame stays after a newer picture.
KEY_AGE = 3.0

_WRAP = 1 << 32


def _seconds(newer: VideoIn, older: VideoIn) -> float:
    """RTP time from ``older`` to ``newer`` (negative: ``newer`` is older, modulo 2^32)."""
    ticks = (newer.rtp_timestamp - older.rtp_timestamp) % _WRAP
    if ticks >= _WRAP // 2:
        ticks -= _WRAP
    return ticks / (newer.clock_rate or 90000)


class RecentPictures:
    """See the module docstring."""

    def __init__(self) -> None:
        self._spread: list[VideoIn] = []
        self._key: VideoIn | None = None

    def add(self, picture: VideoIn) -> None:
        spread = self._spread
        if spread and _seconds(picture, spread[-1]) < 0:
            spread.clear()
            self._key = None
        if picture.keyframe:
            self._key = picture
        if len(spread) >= 2 and _seconds(spread[-1], spread[-2]) < SPREAD_STEP:
            spread[-1] = picture
        else:
            spread.append(picture)
        while len(spread) > SPREAD_COUNT or _seconds(picture, spread[0]) > SPREAD_SPAN:
            del spread[0]
        if self._key is not None and _seconds(picture, self._key) > KEY_AGE:
            self._key = None

    def pictures(self) -> tuple[VideoIn, ...]:
        """The kept pictures, oldest first (the key frame once, in its place)."""
        kept = list(self._spread)
        key = self._key
        if key is not None and all(p is not key for p in kept):
            kept.insert(sum(_seconds(key, p) > 0 for p in kept), key)
        return tuple(kept)

    def clear(self) -> None:
        self._spread.clear()
        self._key = None
