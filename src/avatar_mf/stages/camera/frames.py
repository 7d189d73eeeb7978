"""The pictures the camera stage takes (pipeline frames, ``pipeline/frames.py``'s shape).

* :class:`VideoPicture` -- one decoded picture of the participant's video stream (RTP H.264
  or VP8, decoded by the media plane), RGB24. **Provisional**: the media plane's own decoded
  video frame (``VideoIn``, on the ``video`` branch today) is not on main yet; when it lands
  the stage takes that class instead (or the media plane adapts it to this one), which is why
  this one lives with the stage and not in ``pipeline/frames.py``.
* :class:`ImageInput` -- a JPEG or PNG picture the UE sent on a data channel (for UEs
  without RTP video), decoded by the stage in its worker.

Both are newest-wins: a picture the stage could not take before the next one came is worth
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from avatar_mf.pipeline.frames import Delivery, Frame


@dataclass(frozen=True, slots=True)
class VideoPicture(Frame):
    """``rgb``: ``width * height * 3`` bytes, rows top first; ``media_time``: seconds on the
    sender's timeline (RTP timestamp / 90000, unwrapped), None to use the arrival time."""

    rgb: bytes = field(repr=False)
    width: int = 0
    height: int = 0
    media_time: float | None = None

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS


@dataclass(frozen=True, slots=True)
class ImageInput(Frame):
    """A JPEG/PNG picture from a data channel; ``media_time`` as for :class:`VideoPicture`."""

    data: bytes = field(repr=False)
    media_time: float | None = None
    message_id: str | None = None

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS

    @property
    def request_id(self) -> str | None:
        return self.message_id
