"""Named parts of MediaPipe's 478-point face mesh (the topology of
:class:`avatar_mf.face.FaceResult`), and its canonical triangles.

Sides are the face's own: *left* is the person's left, which is the right of a photo of them
(larger x), as in the ARKit names (``eyeBlinkLeft``). Contours run from the outer corner to
the inner one (eyes) or from the right corner to the left one (lips), so the upper and lower
lines pair point for point.

:func:`face_triangles` reads the canonical face mesh's 852 triangles from the installed
MediaPipe package (``FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION``, listed as the three
edges of each triangle in turn). That mesh leaves the mouth and the two eye openings as holes;
:mod:`.model` fills them.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

#: Landmarks per face: 468 mesh points and 10 iris points.
LANDMARKS: Final = 478

#: The face's outline, a closed loop (forehead top first, then towards the face's left).
FACE_OVAL: Final = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

#: Eyes: corners, upper and lower lids (outer to inner, the corners left out), iris points
#: (centre first).
RIGHT_EYE_CORNERS: Final = (33, 133)
RIGHT_UPPER_LID: Final = (246, 161, 160, 159, 158, 157, 173)
RIGHT_LOWER_LID: Final = (7, 163, 144, 145, 153, 154, 155)
RIGHT_IRIS: Final = (468, 469, 470, 471, 472)
LEFT_EYE_CORNERS: Final = (263, 362)
LEFT_UPPER_LID: Final = (466, 388, 387, 386, 385, 384, 398)
LEFT_LOWER_LID: Final = (249, 390, 373, 374, 380, 381, 382)
LEFT_IRIS: Final = (473, 474, 475, 476, 477)

#: Lips, from the face's right corner to its left one.
MOUTH_CORNERS: Final = (61, 291)
INNER_CORNERS: Final = (78, 308)
UPPER_OUTER: Final = (185, 40, 39, 37, 0, 267, 269, 270, 409)
LOWER_OUTER: Final = (146, 91, 181, 84, 17, 314, 405, 321, 375)
UPPER_INNER: Final = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_INNER: Final = (95, 88, 178, 87, 14, 317, 402, 318, 324)
#: The mouth opening's rim, a closed loop: right inner corner, lower inner lip, left inner
#: corner, upper inner lip back.
INNER_LIP_LOOP: Final = (78, *LOWER_INNER, 308, *reversed(UPPER_INNER))
UPPER_LIP: Final = (*UPPER_OUTER, *UPPER_INNER)
LOWER_LIP: Final = (*LOWER_OUTER, *LOWER_INNER)
LIPS: Final = (*MOUTH_CORNERS, *INNER_CORNERS, *UPPER_LIP, *LOWER_LIP)

#: Brows: inner end, middle and outer end of each.
RIGHT_BROW: Final = (107, 105, 70)
LEFT_BROW: Final = (336, 334, 300)
#: The bottom of the chin; the nose tip; the cheek points beside the ears.
CHIN: Final = 152
NOSE_TIP: Final = 1
EARS: Final = (234, 454)


def face_triangles() -> NDArray[np.int64]:
    """(852, 3) the canonical face mesh's triangles, from the installed MediaPipe."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    edges = FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION
    triangles = np.array(
        [(edges[i].start, edges[i + 1].start, edges[i + 2].start) for i in range(0, len(edges), 3)],
        dtype=np.int64,
    )
    if triangles.shape != (852, 3) or int(triangles.max()) >= LANDMARKS:
        raise ValueError(f"unexpected MediaPipe face mesh: {triangles.shape}")
    return triangles
