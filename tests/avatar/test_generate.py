"""The procedural default head: size, rig, determinism and blendshape locality."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.avatar import (
    ARKIT_BLENDSHAPES,
    DEFAULT_JOINT_NAMES,
    AvatarModel,
    check_model,
)
from avatar_mf.avatar.generate import generate_default_head
from tests.avatar.samples import default_head, low_head

MM = 0.001


def eye_centres(model: AvatarModel) -> dict[str, np.ndarray]:
    rest = model.global_rest_matrices()
    return {
        "Left": rest[model.joint_index("eyeLeft"), :3, 3],
        "Right": rest[model.joint_index("eyeRight"), :3, 3],
    }


def moved(model: AvatarModel, name: str) -> np.ndarray:
    """Indices of the vertices the blendshape moves."""
    delta = model.target_positions[model.target_index(name)]
    return np.flatnonzero(np.linalg.norm(delta, axis=1) > 0)


def test_size_and_names() -> None:
    model = default_head()
    assert 5_000 <= model.triangle_count <= 20_000
    assert model.vertex_count < 65_535  # uint16 indices in the GLB
    assert model.target_names == ARKIT_BLENDSHAPES
    assert len(model.target_names) == 52 and len(set(model.target_names)) == 52
    assert model.target_names[:3] == ("browDownLeft", "browDownRight", "browInnerUp")
    assert model.target_names[-2:] == ("noseSneerRight", "tongueOut")
    assert model.target_normals is not None and model.colors is not None
    assert tuple(j.name for j in model.joints) == DEFAULT_JOINT_NAMES
    check_model(model)  # finite, in range, weights sum to 1, unit normals


def test_resolutions() -> None:
    low = low_head()
    assert low.triangle_count < default_head().triangle_count
    check_model(low)
    with pytest.raises(ValueError, match="resolution"):
        generate_default_head(resolution="ultra")


def test_deterministic_for_a_seed() -> None:
    assert generate_default_head(seed=3, resolution="low").same_as(
        generate_default_head(seed=3, resolution="low")
    )
    assert not generate_default_head(seed=4, resolution="low").same_as(low_head())
    assert generate_default_head(resolution="low").same_as(low_head())


def test_rest_pose_geometry() -> None:
    model = default_head()
    p = model.positions
    # Metres, Y up, face along +Z: about 30 cm from the neck base to the crown.
    assert 0.25 < p[:, 1].max() - p[:, 1].min() < 0.35
    assert p[:, 2].max() > 0.1  # the nose tip
    # Normals point outwards for nearly all of the skin.
    centre = np.array([0.0, 0.16, 0.0])
    outward = np.einsum("ij,ij->i", model.normals, p - centre) > 0
    assert outward.mean() > 0.9
    # Inverse bind matrices invert the joints' rest transforms.
    product = model.global_rest_matrices() @ model.inverse_bind_matrices
    assert np.allclose(product, np.eye(4), atol=1e-6)


def test_skin_weights_bind_head_jaw_neck_eyes() -> None:
    model = default_head()
    p, joints, weights = model.positions, model.skin_joints, model.skin_weights
    assert np.allclose(weights.sum(axis=1, dtype=np.float64), 1.0, atol=1e-6)

    def weight_of(vertex: int, joint: str) -> float:
        index = model.joint_index(joint)
        return float(weights[vertex][joints[vertex] == index].sum())

    for side, centre in eye_centres(model).items():
        ball = np.flatnonzero(np.linalg.norm(p - centre, axis=1) < 0.0126)
        assert len(ball) > 100
        assert all(weight_of(v, f"eye{side}") == 1.0 for v in ball)
    crown = int(np.argmax(p[:, 1]))
    assert weight_of(crown, "head") == 1.0
    chin = int(np.argmin(np.where((np.abs(p[:, 0]) < 0.005) & (p[:, 2] > 0.07), p[:, 1], 9)))
    assert weight_of(chin, "jaw") > 0.9
    base = int(np.argmin(p[:, 1]))
    assert weight_of(base, "root") + weight_of(base, "neck") == pytest.approx(1.0)
    # The jaw never pulls the back of the head or the neck.
    jaw = np.array([weight_of(v, "jaw") for v in range(model.vertex_count)])
    assert jaw[p[:, 2] < -0.03].max() == 0.0
    assert jaw[p[:, 1] > 0.16].max() == 0.0


# Where each blendshape may move vertices: (x range, y range, z minimum); Left shapes are
# mirrored for Right. Eye shapes are checked against the eye centre instead.
FACE_REGIONS: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "browDownLeft": ((0.0, 0.07), (0.17, 0.225), 0.03),
    "browInnerUp": ((-0.047, 0.047), (0.185, 0.237), 0.03),
    "browOuterUpLeft": ((0.02, 0.08), (0.17, 0.225), 0.0),
    "cheekPuff": ((-0.08, 0.08), (0.08, 0.15), 0.0),
    "cheekSquintLeft": ((0.015, 0.08), (0.12, 0.17), 0.0),
    "noseSneerLeft": ((-0.003, 0.03), (0.125, 0.17), 0.05),
    "jawForward": ((-0.08, 0.08), (0.03, 0.15), -0.03),
    "jawLeft": ((-0.08, 0.08), (0.03, 0.15), -0.03),
    "jawOpen": ((-0.08, 0.08), (0.03, 0.15), -0.03),
    "mouthClose": ((-0.04, 0.04), (0.085, 0.13), 0.05),
    "mouthDimpleLeft": ((0.005, 0.05), (0.09, 0.125), 0.04),
    "mouthFrownLeft": ((0.005, 0.05), (0.09, 0.125), 0.04),
    "mouthFunnel": ((-0.045, 0.045), (0.085, 0.13), 0.04),
    "mouthLeft": ((-0.05, 0.05), (0.08, 0.14), 0.03),
    "mouthLowerDownLeft": ((-0.007, 0.04), (0.085, 0.11), 0.05),
    "mouthPressLeft": ((-0.007, 0.04), (0.085, 0.13), 0.05),
    "mouthPucker": ((-0.045, 0.045), (0.085, 0.13), 0.04),
    "mouthRollLower": ((-0.04, 0.04), (0.085, 0.11), 0.05),
    "mouthRollUpper": ((-0.04, 0.04), (0.105, 0.13), 0.05),
    "mouthShrugLower": ((-0.04, 0.04), (0.06, 0.11), 0.04),
    "mouthShrugUpper": ((-0.04, 0.04), (0.105, 0.13), 0.05),
    "mouthSmileLeft": ((0.005, 0.07), (0.09, 0.155), 0.03),
    "mouthStretchLeft": ((0.005, 0.05), (0.09, 0.125), 0.04),
    "mouthUpperUpLeft": ((-0.007, 0.04), (0.105, 0.13), 0.05),
    "tongueOut": ((-0.02, 0.02), (0.085, 0.12), 0.03),
}


def region_of(name: str) -> tuple[str, tuple[tuple[float, float], tuple[float, float], float]]:
    if name in FACE_REGIONS:
        return name, FACE_REGIONS[name]
    left = name.replace("Right", "Left")
    (x0, x1), y_range, z_min = FACE_REGIONS[left]
    return left, ((-x1, -x0), y_range, z_min)


@pytest.mark.parametrize("name", ARKIT_BLENDSHAPES)
def test_blendshape_is_local_and_visible(name: str) -> None:
    model = default_head()
    delta = model.target_positions[model.target_index(name)]
    size = np.linalg.norm(delta, axis=1)
    assert 2 * MM < size.max() < 40 * MM, f"{name}: largest move {size.max() / MM:.2f} mm"
    index = moved(model, name)
    p = model.positions[index]
    eyes = eye_centres(model)
    eyeball = np.zeros(model.vertex_count, dtype=bool)
    for centre in eyes.values():
        eyeball |= np.linalg.norm(model.positions - centre, axis=1) < 0.0126
    if name.startswith("eye"):
        side = "Left" if name.endswith("Left") else "Right"
        distance = np.linalg.norm(p - eyes[side], axis=1)
        assert distance.max() < 0.032, f"{name} moves vertices {distance.max():.3f} m away"
        assert eyeball[index].any() == name.startswith("eyeLook")
        if name.startswith("eyeLook"):
            assert eyeball[index].all() or side in name  # eyeballs, and lids following them
    else:
        _, ((x0, x1), (y0, y1), z_min) = region_of(name)
        assert not eyeball[index].any(), f"{name} moves an eyeball"
        assert p[:, 0].min() >= x0 and p[:, 0].max() <= x1, f"{name}: x outside [{x0}, {x1}]"
        assert p[:, 1].min() >= y0 and p[:, 1].max() <= y1, f"{name}: y outside [{y0}, {y1}]"
        assert p[:, 2].min() >= z_min, f"{name}: moves vertices behind z={z_min}"


@pytest.mark.parametrize("left", [n for n in ARKIT_BLENDSHAPES if n.endswith("Left")])
def test_left_right_pairs_mirror(left: str) -> None:
    model = default_head()
    a = model.target_positions[model.target_index(left)]
    b = model.target_positions[model.target_index(left.replace("Left", "Right"))]
    pa, pb = model.positions[moved(model, left)], model.positions[moved(model, left[:-4] + "Right")]
    assert pa[:, 0].mean() > 0 or left in ("mouthLeft", "jawLeft")  # subject's left is +X
    assert pb[:, 0].mean() < 0 or left in ("mouthLeft", "jawLeft")
    largest_a, largest_b = np.linalg.norm(a, axis=1).max(), np.linalg.norm(b, axis=1).max()
    assert largest_a == pytest.approx(largest_b, rel=0.15)


def mean_move(model: AvatarModel, name: str, mask: np.ndarray) -> np.ndarray:
    return model.target_positions[model.target_index(name)][mask].mean(axis=0)


def test_directions() -> None:
    model = default_head()
    p = model.positions
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    chin = (np.abs(x) < 0.01) & (y > 0.06) & (y < 0.085) & (z > 0.07)
    assert mean_move(model, "jawOpen", chin)[1] < -8 * MM  # the chin drops
    assert mean_move(model, "jawForward", chin)[2] > 5 * MM
    assert mean_move(model, "jawLeft", chin)[0] > 5 * MM
    mouth_y = float(np.median(y[(np.abs(x) < 0.002) & (z > 0.08) & (y > 0.1) & (y < 0.116)]))
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        corner = (np.abs(x - sign * 0.024) < 0.004) & (np.abs(y - mouth_y) < 0.004) & (z > 0.05)
        assert corner.any()
        assert mean_move(model, f"mouthSmile{side}", corner)[1] > 2.5 * MM
        assert mean_move(model, f"mouthFrown{side}", corner)[1] < -2 * MM
        far_corner = (np.abs(x + sign * 0.024) < 0.004) & (np.abs(y - mouth_y) < 0.004) & (z > 0.05)
        smile = model.target_positions[model.target_index(f"mouthSmile{side}")]
        assert np.abs(smile[far_corner]).max() == 0.0  # the other corner stays
        eye = eye_centres(model)[side]
        lid = (np.abs(x - eye[0]) < 0.004) & (y > eye[1] + 0.004) & (y < eye[1] + 0.012)
        lid &= (z > eye[2]) & (np.linalg.norm(p - eye, axis=1) > 0.0126)
        assert mean_move(model, f"eyeBlink{side}", lid)[1] < -3 * MM  # the upper lid closes
        assert mean_move(model, f"eyeWide{side}", lid)[1] > 1 * MM
        brow = (np.abs(x - sign * 0.032) < 0.01) & (np.abs(y - 0.198) < 0.004) & (z > 0.05)
        assert mean_move(model, f"browDown{side}", brow)[1] < -3 * MM
        ball = np.linalg.norm(p - eye, axis=1) < 0.0126
        front = ball & (z > eye[2] + 0.011)
        assert mean_move(model, f"eyeLookDown{side}", front)[1] < -3 * MM
        assert mean_move(model, f"eyeLookUp{side}", front)[1] > 3 * MM
        assert mean_move(model, f"eyeLookOut{side}", front)[0] * sign > 3 * MM
        assert mean_move(model, f"eyeLookIn{side}", front)[0] * sign < -3 * MM
    inner_brows = (np.abs(x) < 0.025) & (np.abs(y - 0.2) < 0.006) & (z > 0.05)
    assert mean_move(model, "browInnerUp", inner_brows)[1] > 3 * MM
    # An inner-brow raise (FACS AU1): the brows' heads (painted from |x| ~ 0.015) go up by
    # several millimetres, their tails stay, the upper lids do not move.
    raise_ = model.target_positions[model.target_index("browInnerUp")]
    band = (np.abs(y - 0.203) < 0.003) & (z > 0.05)
    heads = band & (np.abs(x) > 0.012) & (np.abs(x) < 0.02)
    tails = band & (np.abs(x) > 0.05) & (np.abs(x) < 0.056)
    assert heads.any() and tails.any()
    assert raise_[heads, 1].min() > 6 * MM
    assert raise_[tails, 1].max() < 0.5 * MM
    for eye in eye_centres(model).values():
        lid = (np.abs(x - eye[0]) < 0.01) & (y > eye[1]) & (y < eye[1] + 0.009) & (z > eye[2])
        assert lid.any() and np.abs(raise_[lid]).max() < 0.5 * MM
    lips = (np.abs(x) < 0.01) & (np.abs(y - mouth_y) < 0.006) & (z > 0.08)
    assert mean_move(model, "mouthPucker", lips)[2] > 4 * MM


def test_morph_normals_follow_positions() -> None:
    model = default_head()
    assert model.target_normals is not None
    for k in range(len(model.target_names)):
        moved_normals = np.any(model.target_normals[k] != 0, axis=1)
        assert moved_normals.any()
        # Posed normals stay close to unit length.
        posed = model.normals[moved_normals] + model.target_normals[k][moved_normals]
        assert np.allclose(np.linalg.norm(posed, axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("subdivisions", [0, 1, 2, 3])
def test_icosphere(subdivisions: int) -> None:
    from avatar_mf.avatar.generate import _sphere

    vertices, faces = _sphere(subdivisions)
    assert len(vertices) == 10 * 4**subdivisions + 2
    assert len(faces) == 20 * 4**subdivisions
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=1e-12)
    assert len(np.unique(np.round(vertices, 9), axis=0)) == len(vertices)  # no duplicates
    # A closed surface: every edge is used by exactly two faces, once in each direction.
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    assert len({tuple(edge) for edge in directed}) == len(directed)
    assert {tuple(edge) for edge in directed} == {(b, a) for a, b in directed}
    # Outward winding: each face's normal points away from the centre.
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    assert np.all(np.einsum("ij,ij->i", normals, a + b + c) > 0)
    # Roughly uniform: no triangle much smaller than the largest.
    areas = np.linalg.norm(normals, axis=1)
    assert areas.min() > 0.5 * areas.max()


def test_the_package_does_not_load_the_generator() -> None:
    # The node imports avatar_mf.avatar.validate at start-up; the mesh generator is not needed.
    import subprocess
    import sys

    code = (
        "import sys, avatar_mf.avatar.validate, avatar_mf.avatar\n"
        "print('avatar_mf.avatar.generate' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
