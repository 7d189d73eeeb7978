"""Offscreen rendering of posed avatar meshes (TR 26.813 D.4 alternative 1: the network
animates and renders the avatar as 2D video for avatar-assisted UEs, TS 26.264 7.3.2).

* :mod:`.scene` -- what a renderer draws: :class:`MeshData` (the static part of a mesh:
  triangles, base colours, optional texture), :class:`Framing` (head-and-shoulders camera,
  yaw for a three-quarter view) and :class:`RenderSettings` (size, background, alpha);
* :mod:`.camera` -- the framing maths (look-at, perspective), pure numpy;
* :mod:`.gl` -- :class:`GlRenderer`: OpenGL 3.3 through moderngl on an EGL standalone
  context (Mesa llvmpipe on CPU, a GPU's driver when the machine has one). Posed positions
  and normals in, an RGBA ``uint8`` (H, W, 4) frame out, rows top first;
* :mod:`.pool` -- :class:`RenderPool`: renderers in worker processes (one per core by
  default), never on the event loop; vertices in and frames out through shared memory;
* :mod:`.errors` -- :class:`RenderUnavailable`: no moderngl, no EGL, no Mesa driver, with the
  package to install in its message.

Nothing here knows about ARF units or sessions: callers pose the mesh (the animation stage)
and hand over arrays.
"""

from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.scene import Framing, MeshData, RenderSettings

__all__ = ["Framing", "MeshData", "RenderSettings", "RenderUnavailable"]
