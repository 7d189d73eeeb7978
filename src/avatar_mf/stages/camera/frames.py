"""The pictures the camera stage takes besides the media plane's decoded video
(:class:`~avatar_mf.pipeline.frames.VideoIn`): a JPEG or PNG sent on a data channel (for UEs
without RTP video), decoded by the stage's worker.

Newest-wins: a picture the stage could not take before the next one came is worth nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from avatar_mf.pipeline.frames import Delivery, Frame


@dataclass(frozen=True, slots=True)
class ImageInput(Frame):
    """A JPEG/PNG picture from a data channel; ``media_time``: seconds on the sender's
    timeline, None to use the arrival time; ``message_id``: the request an error answers."""

    data: bytes = field(repr=False)
    media_time: float | None = None
    message_id: str | None = None

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS

    @property
    def request_id(self) -> str | None:
        return self.message_id
