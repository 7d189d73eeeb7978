"""The test UE's side of the MF's video: RTP time -> wall clock by SR (wrap-around), speech
and motion onsets, and the MP4 that --render writes (pictures at their RTP time, audio
aligned by the SRs)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avatar_mf.codecs.video import Picture
from avatar_mf.rtp.rtcp import ntp_timestamp
from avatar_mf.ue.av_sync import SrMapping, motion_onset, region_changes, sound_onset
from avatar_mf.ue.video_file import save_mp4


def test_sr_maps_rtp_time_to_wall_time_across_the_wrap() -> None:
    sr = SrMapping.of(ntp_timestamp(1_800_000_000.25), 0xFFFFFF00, 90000)
    assert sr.wall_time == pytest.approx(1_800_000_000.25, abs=1e-6)
    assert sr.wall(0xFFFFFF00 + 90000 - 0x100000000) == pytest.approx(1_800_000_001.25)
    assert sr.wall(0xFFFFFF00 - 45000) == pytest.approx(1_799_999_999.75)


def test_sound_onset_is_the_first_loud_sample() -> None:
    quiet = bytes(640)
    loud = np.zeros(320, np.int16)
    loud[80:] = 4000
    onset = sound_onset([(100, quiet), (260, quiet), (420, loud.tobytes())])
    assert onset == (420, 80 / 16000)
    assert sound_onset([(1, quiet)]) is None


def picture(mouth: int) -> Picture:
    rgb = np.full((64, 64, 3), 60, np.uint8)
    rgb[44:58, 24:40] = mouth
    return Picture.from_rgb(rgb)


def test_motion_onset_looks_only_at_its_region() -> None:
    pictures = [(0, picture(60)), (3600, picture(60)), (7200, picture(200))]
    region = (0.3, 0.6, 0.7, 0.95)
    assert motion_onset(pictures, region) == 7200
    assert region_changes(pictures, region)[:2] == [0.0, 0.0]
    assert motion_onset(pictures, (0.0, 0.0, 1.0, 0.3)) is None  # the top did not move


def test_render_mp4_has_the_pictures_at_their_times_and_the_audio(tmp_path: Path) -> None:
    pictures = [(1000 + i * 3600, picture(60 + 7 * i)) for i in range(25)]  # 1 s at 25 fps
    tone = (np.sin(np.arange(32000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2")
    path = tmp_path / "video.mp4"
    assert save_mp4(path, pictures, audio=tone.tobytes(), audio_start=-0.5) == 25
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        frames = list(container.decode(video=0))
        assert len(frames) == 25 and (frames[0].width, frames[0].height) == (64, 64)
        assert float(frames[-1].time) == pytest.approx(24 / 25, abs=0.002)
        assert audio.codec_context.name == "aac"
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples == pytest.approx(16000 * 1.5, abs=2048)  # 2 s with 0.5 s cut
