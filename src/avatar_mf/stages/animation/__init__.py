"""Avatar animation (TR 26.813 D.4): who applies animation data to the base avatar.

The default, :class:`ReceiverAnimates` (entry point ``receiver``), is alternative 2b: the
receiving UE animates, so this stage takes no frames and the UE's (or the MF's) animation units
go past it to the receivers unchanged. A stage that animates in the network (alternative 1:
rendered 2D video or an animated 3D stream for avatar-assisted UEs) accepts
:class:`~avatar_mf.pipeline.frames.AnimationUnitFrame` here and says so with
:attr:`ReceiverAnimates.animates_in_network` (the negotiation reads it).

The network-animating stage is :class:`.network.NetworkAnimation` (entry point ``network``):
:mod:`.timeline` turns units into poses over media time, :mod:`.posing` poses the mesh (morph
targets, landmark pulls, linear blend skinning), :mod:`avatar_mf.render` draws it in worker
processes and :mod:`.video` hands the frames to the media plane. A base avatar that is a photo
is a 2D avatar (TR 26.813 3.4): :mod:`.portrait` warps it, drawn by the same renderer.
"""

from __future__ import annotations

from avatar_mf.pipeline.stage import StageBase, StageContext


class _PassThrough(StageBase):
    accepts = ()


class ReceiverAnimates:
    """D.4 alternative 2b: the receiver animates; the network does nothing here."""

    #: Whether this stage animates and renders in the network (D.4 alternative 1).
    animates_in_network = False

    def open(self, context: StageContext) -> StageBase:
        return _PassThrough()
