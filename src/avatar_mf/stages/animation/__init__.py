"""Avatar animation (TR 26.813 D.4): who applies animation data to the base avatar.

The default, :class:`ReceiverAnimates`, is alternative 2b: the receiving UE animates, so the
MF forwards animation units unchanged (and it is what the UE-centric path does too). An
implementation that animates in the network (alternative 1: rendered 2D video or an animated
3D stream for avatar-assisted UEs) plugs in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from avatar_mf.pipeline.frames import AnimationUnitFrame, Frame


class AvatarAnimator(Protocol):
    def animate(self, frame: AnimationUnitFrame) -> Sequence[Frame]:
        """What receivers get for one animation unit."""
        ...


class ReceiverAnimates:
    """D.4 alternative 2b: the receiver animates; units pass through unchanged."""

    def animate(self, frame: AnimationUnitFrame) -> Sequence[Frame]:
        return (frame,)
