"""The common fallback avatar format (TR 26.813 section 4 interoperability): is a container
conforming, and if not, why not.

TR 26.813 asks every participant to offer a simple common format as a fallback, which a media
gateway (the MF) converts proprietary formats to and from. The product's common format
(docs/avatar-format.md, *The common format*):

* the base avatar is an ARF container (ISO/IEC 23090-39 draft) holding one glTF 2.0 binary
  that :func:`~avatar_mf.avatar.container.read_arf` accepts;
* its ``preamble.supportedAnimations`` lists :data:`COMMON_PROFILE` (``arf-face-v1``);
* the blendshape set of the asset's first level of detail has profile ``arf-face-v1`` and is
  exactly the 52 ARKit names in :data:`~avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES` order (so
  BLENDSHAPE unit index ``i`` is ``ARKIT_BLENDSHAPES[i]``);
* the skeleton has joints named :data:`COMMON_JOINTS` (``neck``, ``head``, ``jaw``,
  ``eyeLeft``, ``eyeRight``), ``head`` below ``neck`` and ``jaw`` and the eyes below ``head``
  (JOINT units index the skeleton's joint list).

:func:`check_common` never raises on bad input: a container the reader refuses is
non-conforming with the reader's error code. Warnings are notes that do not break conformance
(for instance a blendshape whose deltas are all zero: a converted avatar that had nothing to
map there). Pure and CPU bound (it reads the whole GLB): run it in an executor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.avatar.container import FACE_PROFILE, ArfAvatar, read_arf
from avatar_mf.avatar.errors import AvatarFormatError
from avatar_mf.avatar.limits import ArfLimits

__all__ = [
    "COMMON_CONTENT_TYPE",
    "COMMON_JOINTS",
    "COMMON_PROFILE",
    "Conformance",
    "Finding",
    "check_common",
    "check_common_avatar",
]

#: The animation profile of the common format: BLENDSHAPE units on the ARKit-52 set.
COMMON_PROFILE = FACE_PROFILE
#: The media type of the common format's container (not registered; see docs/protocol.md).
COMMON_CONTENT_TYPE = "application/vnd.arf+zip"
#: The joints every common-format skeleton has (parents first).
COMMON_JOINTS: tuple[str, ...] = ("neck", "head", "jaw", "eyeLeft", "eyeRight")
#: ``joint: required ancestor``.
_ANCESTOR = {"head": "neck", "jaw": "head", "eyeLeft": "head", "eyeRight": "head"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a container is not (or only just) conforming: a stable code and a text."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Conformance:
    """The verdict: ``conforming`` when there is no problem; warnings never count."""

    problems: tuple[Finding, ...]
    warnings: tuple[Finding, ...] = ()

    @property
    def conforming(self) -> bool:
        return not self.problems


def check_common(data: bytes, *, limits: ArfLimits | None = None) -> Conformance:
    """Does ``data`` conform to the common format? Never raises on bad input."""
    if data[:4] == b"glTF":
        return Conformance(
            (
                Finding(
                    "not-arf",
                    "a bare glTF binary, not an ARF container (convert it: the MF does when a "
                    "receiver accepts only the common format)",
                ),
            )
        )
    try:
        avatar = read_arf(data, limits=limits)
    except AvatarFormatError as exc:
        return Conformance((Finding(exc.code.value, exc.message),))
    return check_common_avatar(avatar)


def check_common_avatar(avatar: ArfAvatar) -> Conformance:
    """The common-format checks of a container :func:`read_arf` already accepted."""
    problems: list[Finding] = []
    warnings: list[Finding] = []
    doc = avatar.document
    if COMMON_PROFILE not in doc.preamble.supportedAnimations:
        problems.append(
            Finding(
                "no-common-profile",
                f"preamble.supportedAnimations {doc.preamble.supportedAnimations} does not list "
                f"{COMMON_PROFILE}",
            )
        )
    lod = doc.structure.assets[0].lods[0]
    sets = {s.id: s for s in doc.components.blendshapeSets}
    bset = sets.get(lod.blendshapeSet) if lod.blendshapeSet is not None else None
    if bset is None:
        problems.append(Finding("no-blendshape-set", "the first level of detail names no set"))
    else:
        if bset.profile != COMMON_PROFILE:
            problems.append(
                Finding(
                    "blendshape-profile",
                    f"blendshape set {bset.id} has profile {bset.profile!r}, not {COMMON_PROFILE}",
                )
            )
        names = tuple(bset.names)
        if names != ARKIT_BLENDSHAPES:
            missing = [n for n in ARKIT_BLENDSHAPES if n not in names]
            extra = [n for n in names if n not in ARKIT_BLENDSHAPES]
            if missing or extra:
                detail = (
                    f"missing {len(missing)} ({', '.join(missing[:6])}"
                    f"{' ...' if len(missing) > 6 else ''}), "
                    f"{len(extra)} not ARKit ({', '.join(extra[:6])}"
                    f"{' ...' if len(extra) > 6 else ''})"
                )
            else:
                detail = "the ARKit names, but not in ARKit-52 (MediaPipe) order"
            problems.append(
                Finding("blendshape-names", f"blendshape set {bset.id} is not ARKit-52: {detail}")
            )
        else:
            deltas = np.abs(avatar.model.target_positions).reshape(len(names), -1).max(axis=1)
            inert = [n for n, d in zip(names, deltas, strict=True) if d == 0.0]
            if inert:
                warnings.append(
                    Finding(
                        "inert-blendshapes",
                        f"{len(inert)} blendshapes move nothing: {', '.join(inert[:8])}"
                        f"{' ...' if len(inert) > 8 else ''}",
                    )
                )
    problems.extend(_skeleton_problems(avatar))
    return Conformance(tuple(problems), tuple(warnings))


def _skeleton_problems(avatar: ArfAvatar) -> list[Finding]:
    joints = avatar.model.joints
    index = {j.name: k for k, j in enumerate(joints)}
    missing = [name for name in COMMON_JOINTS if name not in index]
    if missing:
        return [
            Finding(
                "skeleton-joints",
                f"the skeleton lacks {', '.join(missing)} (it has "
                f"{', '.join(j.name for j in joints[:12])})",
            )
        ]
    found: list[Finding] = []
    for name, ancestor in _ANCESTOR.items():
        k: int | None = joints[index[name]].parent
        while k is not None and joints[k].name != ancestor:
            k = joints[k].parent
        if k is None:
            found.append(Finding("skeleton-hierarchy", f"joint {name} is not below {ancestor}"))
    return found
