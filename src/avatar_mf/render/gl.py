"""The OpenGL renderer: moderngl on an EGL standalone context, offscreen.

One :class:`GlRenderer` owns one context (create it in the process that renders: a worker of
:class:`~avatar_mf.render.pool.RenderPool`). Meshes are added once (:meth:`GlRenderer.add_mesh`:
triangles, colours and texture go to the GPU's memory, or llvmpipe's); each frame uploads the
posed positions and normals and reads the picture back (:meth:`GlRenderer.render`).

Shading (OpenGL 3.3 core): base colour = vertex colour (linear RGB) x texture (sRGB, decoded);
soft studio light fixed to the camera: a hemisphere ambient, a wrapped-diffuse key light from
the upper left, a fill from the right, a rim from behind, a faint specular on the key; the
result is encoded for display in the shader with gamma 2 (a square root; textures are decoded
by squaring: llvmpipe spends a third of a frame on ``pow``, and gamma 2 is close to the sRGB
curve). Double sided (the GLB material is): back faces use
the flipped normal. 4x MSAA resolved before the read-back. The projection flips Y, so the rows
read back are top first, ready for an encoder.

Measured on the 2-core machine (llvmpipe, Mesa 22.3): see docs/performance.md, "Rendering".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.render.camera import portrait
from avatar_mf.render.errors import explain
from avatar_mf.render.scene import DEFAULT_COLOUR, Framing, MeshData, RenderSettings

_VERTEX = """
#version 330
uniform mat4 u_view;
uniform mat4 u_projection;
in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_normal;
out vec3 v_position;
out vec3 v_color;
out vec2 v_uv;
void main() {
    vec4 eye = u_view * vec4(in_position, 1.0);
    v_position = eye.xyz;
    v_normal = mat3(u_view) * in_normal;
    v_color = in_color;
    v_uv = in_uv;
    gl_Position = u_projection * eye;
}
"""

_FRAGMENT = """
#version 330
uniform sampler2D u_texture;
in vec3 v_normal;
in vec3 v_position;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
float wrapped(vec3 n, vec3 l, float w) { return max((dot(n, l) + w) / (1.0 + w), 0.0); }
void main() {
    vec3 n = normalize(v_normal);
    // The projection flips Y, which flips the winding: front faces are clockwise here.
    if (gl_FrontFacing) { n = -n; }
    vec4 tex = texture(u_texture, v_uv);
    vec3 base = v_color * tex.rgb * tex.rgb;  // sRGB decoded as gamma 2 (pow is dear here)
    vec3 key = normalize(vec3(-0.45, 0.55, 0.75));
    vec3 fill = normalize(vec3(0.75, 0.05, 0.55));
    vec3 rim = normalize(vec3(0.1, 0.45, -0.9));
    vec3 light = mix(vec3(0.16, 0.15, 0.15), vec3(0.30, 0.31, 0.34), n.y * 0.5 + 0.5);
    light += vec3(1.0, 0.97, 0.92) * 0.95 * wrapped(n, key, 0.35);
    light += vec3(0.85, 0.9, 1.0) * 0.35 * wrapped(n, fill, 0.5);
    light += vec3(1.0) * 0.30 * max(dot(n, rim), 0.0);
    vec3 view = normalize(-v_position);
    float s1 = max(dot(n, normalize(key + view)), 0.0);
    float s4 = (s1 * s1) * (s1 * s1);
    float s8 = s4 * s4;
    float spec = s8 * s8 * s8 * s4 * 0.10;  // s1^28 by squaring
    vec3 colour = base * light + vec3(spec);
    f_color = vec4(sqrt(clamp(colour, 0.0, 1.0)), 1.0);  // encoded as gamma 2
}
"""


# Flat meshes (MeshData.flat, 2D portraits): picture fractions in, no light, no camera. Y
# fraction 0 (the top) goes to clip -1, the first row read back, as the 3D path's flipped Y.
_FLAT_VERTEX = """
#version 330
in vec3 in_position;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_color;
out vec2 v_uv;
void main() {
    v_color = in_color;
    v_uv = in_uv;
    gl_Position = vec4(in_position.xy * 2.0 - 1.0, in_position.z * 2.0 - 1.0, 1.0);
}
"""

_FLAT_FRAGMENT = """
#version 330
uniform sampler2D u_texture;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
void main() {
    f_color = vec4(v_color * texture(u_texture, v_uv).rgb, 1.0);
}
"""


class _Mesh:
    __slots__ = ("data", "positions", "normals", "vao", "texture", "resources")

    def __init__(self, data: MeshData, positions: Any, normals: Any, vao: Any, texture: Any,
                 resources: list[Any]) -> None:
        self.data = data
        self.positions = positions
        self.normals = normals
        self.vao = vao
        self.texture = texture
        self.resources = resources


class _Target:
    __slots__ = ("draw", "resolve", "resources")

    def __init__(self, draw: Any, resolve: Any, resources: list[Any]) -> None:
        self.draw = draw
        self.resolve = resolve
        self.resources = resources


class GlRenderer:
    """Offscreen renderer on its own EGL context (one per process; not thread-safe).

    Raises :class:`~avatar_mf.render.errors.RenderUnavailable` when moderngl, EGL or a Mesa
    driver is missing, naming what to install.
    """

    def __init__(self, *, backend: str | None = "egl") -> None:
        try:
            import moderngl

            kwargs: dict[str, Any] = {"require": 330}
            if backend is not None:
                kwargs["backend"] = backend
            self._ctx = moderngl.create_standalone_context(**kwargs)
        except Exception as exc:  # ImportError, or moderngl's Error from glcontext/EGL
            raise explain(exc) from exc
        self._moderngl = moderngl
        ctx = self._ctx
        self._program = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        # moderngl types a program member as a union of uniform, block, attribute, varying.
        self._view: Any = self._program["u_view"]
        self._projection: Any = self._program["u_projection"]
        self._sampler: Any = self._program["u_texture"]
        self._flat = ctx.program(vertex_shader=_FLAT_VERTEX, fragment_shader=_FLAT_FRAGMENT)
        self._flat_sampler: Any = self._flat["u_texture"]
        self._white = ctx.texture((1, 1), 4, bytes([255, 255, 255, 255]))
        self._meshes: dict[str, _Mesh] = {}
        self._targets: dict[tuple[int, int, int], _Target] = {}

    @property
    def renderer_name(self) -> str:
        """The OpenGL renderer string (``llvmpipe ...`` on CPU)."""
        return str(self._ctx.info["GL_RENDERER"])

    # --- meshes ---------------------------------------------------------------------------

    def has_mesh(self, key: str) -> bool:
        return key in self._meshes

    def add_mesh(self, key: str, data: MeshData) -> None:
        """Upload the static part of a mesh under ``key`` (replacing one of that key)."""
        with self._ctx:
            self._add_mesh(key, data)

    def _add_mesh(self, key: str, data: MeshData) -> None:
        self.remove_mesh(key)
        ctx = self._ctx
        n = data.vertex_count
        positions = ctx.buffer(reserve=n * 12, dynamic=True)
        normals = ctx.buffer(reserve=n * 12, dynamic=True)
        colours = data.colors if data.colors is not None else np.tile(
            np.asarray(DEFAULT_COLOUR, dtype=np.float32), (n, 1)
        )
        colour_buffer = ctx.buffer(np.ascontiguousarray(colours, dtype=np.float32).tobytes())
        uvs = data.uvs if data.uvs is not None else np.zeros((n, 2), dtype=np.float32)
        uv_buffer = ctx.buffer(np.ascontiguousarray(uvs, dtype=np.float32).tobytes())
        index = ctx.buffer(data.triangles.tobytes())
        attributes = [
            (positions, "3f", "in_position"),
            (normals, "3f", "in_normal"),
            (colour_buffer, "3f", "in_color"),
            (uv_buffer, "2f", "in_uv"),
        ]
        if data.flat:  # the flat program has no normals
            attributes = [a for a in attributes if a[2] != "in_normal"]
        vao = ctx.vertex_array(
            self._flat if data.flat else self._program,
            attributes,
            index_buffer=index,
            index_element_size=4,
        )
        texture = self._white
        resources = [positions, normals, colour_buffer, uv_buffer, index, vao]
        if data.texture is not None:
            image = data.texture
            texture = ctx.texture(
                (image.shape[1], image.shape[0]), image.shape[2], np.ascontiguousarray(image)
            )
            texture.build_mipmaps()
            texture.filter = (self._moderngl.LINEAR_MIPMAP_LINEAR, self._moderngl.LINEAR)
            resources.append(texture)
        self._meshes[key] = _Mesh(data, positions, normals, vao, texture, resources)

    def remove_mesh(self, key: str) -> None:
        mesh = self._meshes.pop(key, None)
        if mesh is not None:
            with self._ctx:
                for resource in reversed(mesh.resources):
                    resource.release()

    # --- frames ---------------------------------------------------------------------------

    def _target(self, settings: RenderSettings) -> _Target:
        samples = settings.samples if settings.samples > 1 else 0
        key = (settings.width, settings.height, samples)
        target = self._targets.get(key)
        if target is None:
            ctx = self._ctx
            size = (settings.width, settings.height)
            colour = ctx.renderbuffer(size, 4, samples=samples)
            depth = ctx.depth_renderbuffer(size, samples=samples)
            draw = ctx.framebuffer(color_attachments=[colour], depth_attachment=depth)
            resources = [colour, depth, draw]
            resolve = draw
            if samples:
                plain = ctx.renderbuffer(size, 4)
                resolve = ctx.framebuffer(color_attachments=[plain])
                resources += [plain, resolve]
            target = self._targets[key] = _Target(draw, resolve, resources)
        return target

    def render(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
        out: Any = None,
    ) -> NDArray[np.uint8]:
        """The mesh ``key`` posed at ``positions``/``normals`` (N, 3) float32, as an RGBA
        (H, W, 4) uint8 picture, rows top first. With ``out`` (a writable buffer of
        ``settings.frame_bytes``) the picture is read straight into it and returned as a view
        of it.

        Every entry point makes this renderer's context current first (and restores the one
        that was), so several renderers in one process never draw into each other's."""
        with self._ctx:
            return self._render(key, positions, normals, settings, framing, out)

    def _render(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        framing: Framing | None,
        out: Any,
    ) -> NDArray[np.uint8]:
        mesh = self._meshes[key]
        n = mesh.data.vertex_count
        if positions.shape != (n, 3) or normals.shape != (n, 3):
            raise ValueError(f"mesh {key!r} has {n} vertices; got {positions.shape}")
        mesh.positions.write(np.ascontiguousarray(positions, dtype=np.float32))
        if not mesh.data.flat:
            mesh.normals.write(np.ascontiguousarray(normals, dtype=np.float32))
            view, projection = portrait(
                mesh.data.bounds, framing or settings.framing, settings.width / settings.height
            )
            self._view.write(view.T.astype(np.float32).tobytes())
            self._projection.write(projection.T.astype(np.float32).tobytes())
        target = self._target(settings)
        ctx = self._ctx
        target.draw.use()
        r, g, b = settings.background
        target.draw.clear(r, g, b, 0.0 if settings.alpha else 1.0, depth=1.0)
        ctx.enable(self._moderngl.DEPTH_TEST)
        ctx.disable(self._moderngl.CULL_FACE)
        mesh.texture.use(0)
        (self._flat_sampler if mesh.data.flat else self._sampler).value = 0
        mesh.vao.render(self._moderngl.TRIANGLES)
        if target.resolve is not target.draw:
            ctx.copy_framebuffer(target.resolve, target.draw)
        shape = (settings.height, settings.width, 4)
        if out is None:
            data = target.resolve.read(components=4, alignment=1)
            return np.frombuffer(data, dtype=np.uint8).reshape(shape)
        target.resolve.read_into(out, components=4, alignment=1)
        return np.frombuffer(out, dtype=np.uint8, count=settings.frame_bytes).reshape(shape)

    def release(self) -> None:
        """Free every GPU resource and the context."""
        with self._ctx:
            for key in list(self._meshes):
                self.remove_mesh(key)
            for target in self._targets.values():
                for resource in reversed(target.resources):
                    resource.release()
            self._targets.clear()
        self._ctx.release()
