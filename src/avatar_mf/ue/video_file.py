"""What the test UE received, as a video file: MP4 (H.264) with the audio muxed in (AAC).

``avatar-mf ue call ... --render DIR`` writes ``DIR/video.mp4``: every picture the UE decoded
from the MF's RTP video, placed at its RTP time (90 kHz, from the first picture), and, when the
call had RTP audio, the 16 kHz PCM the UE received, from the first audio frame's RTP time
mapped to the video's through the MF's RTCP SRs when both have one (else both start at 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avatar_mf.codecs.video import Picture


def save_mp4(
    path: Path,
    pictures: Sequence[tuple[int, Picture]],
    *,
    audio: bytes = b"",
    audio_start: float = 0.0,
    rate: int = 25,
) -> int:
    """Write ``pictures`` ((RTP timestamp at 90 kHz, picture)) to ``path``; ``audio``: 16 kHz
    mono PCM starting ``audio_start`` seconds after the first picture (negative: before it,
    and that part is cut). Returns the pictures
    written (pictures whose time does not advance are dropped)."""
    if not pictures:
        raise ValueError("no pictures to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = pictures[0][1].width, pictures[0][1].height
    written = 0
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, 90000)
        video.options = {"preset": "veryfast", "crf": "20"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        first = pictures[0][0]
        last_pts = -1
        for timestamp, picture in pictures:
            pts = (timestamp - first) & 0xFFFFFFFF
            if pts <= last_pts or (picture.width, picture.height) != (width, height):
                continue
            frame = picture.to_frame()
            frame.pts = pts
            frame.time_base = Fraction(1, 90000)
            for packet in video.encode(frame):
                container.mux(packet)
            last_pts = pts
            written += 1
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            lead = int(round(audio_start * 16000))
            pcm = np.frombuffer(audio, dtype="<i2")
            # Audio that started before the first picture is cut; later audio is delayed.
            samples = pcm[-lead:] if lead < 0 else np.concatenate([np.zeros(lead, np.int16), pcm])
            step = 1024
            for i in range(0, len(samples), step):
                chunk = samples[i : i + step].reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                aframe.sample_rate = 16000
                aframe.pts = i
                aframe.time_base = Fraction(1, 16000)
                for packet in sound.encode(aframe):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return written
