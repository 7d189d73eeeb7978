"""Resource limits applied while reading untrusted avatars (ARF containers and GLB models).

Every limit is checked against *declared* sizes before anything is allocated or decompressed,
and again against the bytes actually produced. The defaults fit the product's own default head
(about 6k vertices, 52 targets, about 2 MB GLB) with a wide margin and keep the worst case a
hostile upload can cost to well under 200 MB of memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GlbLimits:
    """Limits on one GLB model (checked by :func:`avatar_mf.avatar.glb.read_glb`)."""

    #: Largest GLB file accepted, in bytes.
    max_glb_bytes: int = 64 * MIB
    #: Largest JSON chunk accepted, in bytes.
    max_json_bytes: int = 4 * MIB
    #: Most vertices in the mesh (the POSITION accessor count).
    max_vertices: int = 100_000
    #: Most triangles in the mesh.
    max_triangles: int = 200_000
    #: Most morph targets (blendshapes).
    max_morph_targets: int = 256
    #: Most joints in the skin.
    max_joints: int = 256
    #: Most float32 values all morph targets may expand to (targets x vertices x 3 x attributes):
    #: bounds the memory sparse accessors can claim with a few bytes of input. 16 M = 64 MB.
    max_morph_values: int = 16_000_000
    #: Most glTF objects (accessors, buffer views, nodes, ...) of any one kind.
    max_objects: int = 4096
    #: Largest encoded base colour image (PNG or JPEG), in bytes.
    max_texture_bytes: int = 16 * MIB
    #: Largest width or height of that image, in pixels (4096 x 4096 x 4 = 64 MB decoded).
    max_texture_side: int = 4096


@dataclass(frozen=True, slots=True)
class ArfLimits:
    """Limits on one ARF container (checked by :func:`avatar_mf.avatar.container.read_arf`).

    ZIP bomb defences: the archive size, the number of entries, each entry's uncompressed size,
    the total uncompressed size and each entry's compression ratio are all bounded. Ratio is
    checked only for entries larger than ``ratio_min_bytes`` (small JSON compresses well).
    """

    #: Largest container accepted, in bytes (what was uploaded).
    max_archive_bytes: int = 64 * MIB
    #: Most entries in the ZIP central directory.
    max_entries: int = 64
    #: Largest uncompressed size of one entry, in bytes.
    max_entry_bytes: int = 64 * MIB
    #: Largest sum of uncompressed sizes of all entries, in bytes.
    max_total_bytes: int = 128 * MIB
    #: Largest uncompressed/compressed ratio of one entry.
    max_ratio: float = 100.0
    #: Entries up to this uncompressed size are not ratio checked.
    ratio_min_bytes: int = 1 * MIB
    #: Largest ``arf.json``, in bytes.
    max_manifest_bytes: int = 1 * MIB
    #: Limits on the GLB model inside.
    glb: GlbLimits = field(default_factory=GlbLimits)
