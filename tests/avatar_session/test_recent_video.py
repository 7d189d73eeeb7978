"""The bounded keeping of a call's last video pictures for ``avatar generate`` from video."""

from __future__ import annotations

from avatar_mf.avatar_session.recent_video import (
    KEY_AGE,
    SPREAD_COUNT,
    SPREAD_SPAN,
    SPREAD_STEP,
    RecentPictures,
)
from avatar_mf.pipeline.frames import VideoIn

FPS = 25
TICKS = 90000 // FPS


def picture(n: int, *, keyframe: bool = False, start: int = 0) -> VideoIn:
    return VideoIn("p", 16, 16, bytes([n % 256]) * 384, (start + n * TICKS) % (1 << 32),
                   90000, keyframe)


def seconds(a: VideoIn, b: VideoIn) -> float:
    return ((a.rtp_timestamp - b.rtp_timestamp) % (1 << 32)) / 90000


def test_nothing_kept_without_video() -> None:
    assert RecentPictures().pictures() == ()


def test_a_few_pictures_spread_over_the_last_second_newest_included() -> None:
    recent = RecentPictures()
    frames = [picture(n) for n in range(FPS * 10)]  # ten seconds at 25/s
    for frame in frames:
        recent.add(frame)
    kept = recent.pictures()
    assert kept[-1] is frames[-1]  # newest wins
    assert 3 <= len(kept) <= SPREAD_COUNT
    assert seconds(kept[-1], kept[0]) <= SPREAD_SPAN
    gaps = [seconds(b, a) for a, b in zip(kept, kept[1:], strict=False)]
    assert all(g > 0 for g in gaps)  # oldest first
    # Spread out: all but the newest at least the step apart.
    assert all(g >= SPREAD_STEP - 1e-9 for g in gaps[:-1])


def test_the_newest_key_frame_is_kept_while_fresh() -> None:
    recent = RecentPictures()
    key = picture(0, keyframe=True)
    recent.add(key)
    for n in range(1, FPS * 2):
        recent.add(picture(n))
    kept = recent.pictures()
    assert kept[0] is key and len(kept) <= SPREAD_COUNT + 1
    for n in range(FPS * 2, int(FPS * (KEY_AGE + 1))):
        recent.add(picture(n))
    assert key not in recent.pictures()


def test_rtp_time_wraps_and_a_step_back_starts_over() -> None:
    recent = RecentPictures()
    start = (1 << 32) - 10 * TICKS  # wraps after ten pictures
    frames = [picture(n, start=start) for n in range(FPS * 2)]
    for frame in frames:
        recent.add(frame)
    kept = recent.pictures()
    assert kept[-1] is frames[-1] and len(kept) >= 3
    back = picture(0, start=1000)  # a new stream, far behind
    recent.add(back)
    assert recent.pictures() == (back,)
    recent.clear()
    assert recent.pictures() == ()
