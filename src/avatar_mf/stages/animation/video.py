"""The seam to the media plane: rendered frames of one session, newest wins.

The network-animation stage renders at the output rate and hands each picture to the
session's :class:`VideoSource` as a :class:`VideoFrameOut`. The video sender (the media plane:
encode per receiver, RTP, pacing; :mod:`avatar_mf.media.video_sender`) takes them through a
:class:`VideoReader` of its own (:meth:`VideoSource.reader`: several receivers may show the
same avatar, each at its own pace), or, for a single consumer, with :meth:`VideoSource.next`
or :meth:`VideoSource.latest`. Nothing queues: a frame a reader has not taken before the next
one arrives is replaced and counted in its ``skipped`` (and the source's
:attr:`VideoSource.skipped` for the built-in reader): a receiver that falls behind skips
frames, it never delays the renderer, the other receivers or the other sessions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from avatar_mf.pipeline.frames import Delivery, Frame


@dataclass(frozen=True, slots=True)
class VideoFrameOut(Frame):
    """One rendered picture of the participant's avatar (D.4 alternative 1).

    ``rgba`` (height, width, 4) uint8, rows top first, owned by the frame (read-only);
    ``index`` counts the output grid (``time = start + index / rate``: a gap in ``index`` is
    a skipped frame); ``time`` is the session clock's time the frame is for (seconds), and
    ``media_time`` the animation's media time it shows (None before any unit arrived).
    """

    index: int = 0
    time: float = 0.0
    rate: float = 25.0
    rgba: NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0, 4), np.uint8),
                                    repr=False, compare=False)
    media_time: float | None = None

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])


class VideoReader:
    """One consumer's view of a :class:`VideoSource`: newest wins, its own skip count."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self._event = asyncio.Event()
        self._closed = False
        #: Frames offered to this reader.
        self.offered = 0
        #: Frames replaced before this reader took them.
        self.skipped = 0
        self._pending = False

    def _offered(self) -> None:
        if self._pending:
            self.skipped += 1
        self._pending = True
        self.offered += 1
        self._event.set()

    def latest(self) -> VideoFrameOut | None:
        """The newest frame (taken or not), or None before the first."""
        self._pending = False
        return self.source._frame

    async def next(self) -> VideoFrameOut | None:
        """The next frame this reader has not taken (waits for it); None once the source or
        the reader is closed."""
        while not self._pending and not self._closed and not self.source.closed:
            self._event.clear()
            await self._event.wait()
        if not self._pending:
            return None
        self._pending = False
        return self.source._frame

    @property
    def closed(self) -> bool:
        return self._closed or self.source.closed

    def close(self) -> None:
        """Stop reading (the source forgets this reader)."""
        self._closed = True
        self._event.set()
        self.source._readers.discard(self)

    def _wake(self) -> None:
        self._event.set()


class VideoSource:
    """Newest-wins hand-over of one session's rendered frames (see the module docstring)."""

    def __init__(self) -> None:
        self._frame: VideoFrameOut | None = None
        self._taken = True
        self._event = asyncio.Event()
        self._closed = False
        self._readers: set[VideoReader] = set()
        #: The stage has an avatar to render (it renders for the readers that attach).
        self.active = False
        #: Frames offered.
        self.produced = 0
        #: Frames replaced before anyone took them.
        self.skipped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, frame: VideoFrameOut) -> None:
        if self._closed:
            return
        if not self._taken:
            self.skipped += 1
        self._frame = frame
        self._taken = False
        self.produced += 1
        self._event.set()
        for reader in self._readers:
            reader._offered()

    def reader(self) -> VideoReader:
        """A new consumer of this source's frames, from the next frame offered on."""
        reader = VideoReader(self)
        if not self._closed:
            self._readers.add(reader)
        return reader

    @property
    def readers(self) -> int:
        """Readers attached now (receivers being sent this avatar)."""
        return len(self._readers)

    def latest(self) -> VideoFrameOut | None:
        """The newest frame (taken or not), or None before the first."""
        self._taken = True
        return self._frame

    async def next(self) -> VideoFrameOut | None:
        """The next frame not taken yet (waits for it); None once the source is closed."""
        while self._taken and not self._closed:
            self._event.clear()
            await self._event.wait()
        if self._closed and self._taken:
            return None
        self._taken = True
        return self._frame

    def close(self) -> None:
        self._closed = True
        self.active = False
        self._event.set()
        for reader in self._readers:
            reader._wake()
        self._readers.clear()
