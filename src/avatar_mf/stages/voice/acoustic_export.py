"""pocketsphinx's Gaussian codebooks as an ONNX graph: a hop's features -> 42 phone scores.

Build time only (``tools/build_acoustic_model.py``, needs the ``onnx`` package of the dev
extra). The graph (opset 17, IR 8, float32) takes ``features`` (n, 39), the ``1s_c_d_dd``
rows of :mod:`.sphinx_mfcc`, and gives ``scores`` (n, 42): for every codebook of the
phonetically-tied model (one per base phone), the log-likelihood of the hop under its
mixture of 128 diagonal Gaussians per stream (cepstra, deltas, delta-deltas), summed over
the three streams, minus the hop's best codebook, floored at -60 and divided by 10. A
diagonal Gaussian's log density is a quadratic form, so each stream is one MatMul::

    log N(x; mu, var) = x^2 . (-1 / (2 var)) + x . (mu / var)
                        - sum(mu^2 / (2 var)) - sum(log(2 pi var)) / 2

and the mixture's log-likelihood is approximated by its best Gaussian (ReduceMax over the
128, every Gaussian weighted alike: the approximation Sphinx's top-N scoring makes).
ReduceLogSumExp over the 128 (the exact equal-weight mixture) gave the same held-out
accuracy (0.721 against 0.720, six groups) at four times the cost (164 against 42 us per
packet of two hops in onnxruntime), so the graph takes the maximum. Variances are floored
at 1e-4 as pocketsphinx does (``-varfloor``). Metadata: the base phone of every score
(``phones``, comma-separated) and the floor and scale. Serialization is deterministic (the
same files give the same bytes).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from avatar_mf.stages.voice.onnx_export import model_bytes

#: pocketsphinx's default ``-varfloor``.
VARIANCE_FLOOR: Final = 1e-4
#: Scores below the hop's best by more than this are clipped (nats).
SCORE_FLOOR: Final = -60.0
#: Scores are divided by this (the classifier standardises them anyway).
SCORE_SCALE: Final = 10.0


def stream_tables(
    means: NDArray[np.float32], variances: NDArray[np.float32]
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Per stream, the (2 dims, codebooks x densities) weights over [x^2, x] and the
    (codebooks x densities,) constants of the log densities (each Gaussian weighted 1 /
    densities). ``means``/``variances``: (codebooks, streams, densities, dims)."""
    codebooks, streams, densities, dims = means.shape
    out = []
    for s in range(streams):
        mu = means[:, s].astype(np.float64).reshape(-1, dims)
        var = np.maximum(variances[:, s].astype(np.float64).reshape(-1, dims), VARIANCE_FLOOR)
        inverse = 1.0 / var
        weights = np.concatenate([-0.5 * inverse, mu * inverse], axis=1).T
        const = (
            -0.5 * np.sum(mu * mu * inverse, axis=1)
            - 0.5 * np.sum(np.log(2.0 * math.pi * var), axis=1)
            - math.log(densities)
        )
        out.append((weights, const))
    return out


def to_onnx(
    means: NDArray[np.float32], variances: NDArray[np.float32], phones: tuple[str, ...]
) -> bytes:
    """The scoring graph as serialized ONNX bytes."""
    codebooks, streams, densities, dims = means.shape
    if variances.shape != means.shape or len(phones) != codebooks:
        raise ValueError("means, variances and phones disagree")

    def const(name: str, array: NDArray[np.float64] | NDArray[np.int64]) -> TensorProto:
        dtype = np.int64 if array.dtype == np.int64 else np.float32
        return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)

    nodes = []
    initializers = [
        const("mixture_shape", np.array([-1, codebooks, densities], dtype=np.int64)),
        const("floor", np.array(SCORE_FLOOR)),
        const("inverse_scale", np.array(1.0 / SCORE_SCALE)),
        const("axis_1", np.array([1], dtype=np.int64)),
    ]
    summed = ""
    for s, (weights, constant) in enumerate(stream_tables(means, variances)):
        initializers += [
            const(f"starts_{s}", np.array([s * dims], dtype=np.int64)),
            const(f"ends_{s}", np.array([(s + 1) * dims], dtype=np.int64)),
            const(f"weights_{s}", weights),
            const(f"const_{s}", constant),
        ]
        nodes += [
            helper.make_node(
                "Slice", ["features", f"starts_{s}", f"ends_{s}", "axis_1"], [f"x_{s}"]
            ),
            helper.make_node("Mul", [f"x_{s}", f"x_{s}"], [f"square_{s}"]),
            helper.make_node("Concat", [f"square_{s}", f"x_{s}"], [f"terms_{s}"], axis=1),
            helper.make_node("MatMul", [f"terms_{s}", f"weights_{s}"], [f"linear_{s}"]),
            helper.make_node("Add", [f"linear_{s}", f"const_{s}"], [f"density_{s}"]),
            helper.make_node("Reshape", [f"density_{s}", "mixture_shape"], [f"mixture_{s}"]),
            helper.make_node("ReduceMax", [f"mixture_{s}"], [f"stream_{s}"], axes=[2], keepdims=0),
        ]
        if s == 0:
            summed = "stream_0"
        else:
            nodes.append(helper.make_node("Add", [summed, f"stream_{s}"], [f"sum_{s}"]))
            summed = f"sum_{s}"
    nodes += [
        helper.make_node("ReduceMax", [summed], ["best"], axes=[1], keepdims=1),
        helper.make_node("Sub", [summed, "best"], ["relative"]),
        helper.make_node("Max", ["relative", "floor"], ["floored"]),
        helper.make_node("Mul", ["floored", "inverse_scale"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "codebook_scores",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", streams * dims])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", codebooks])],
        initializer=initializers,
    )
    return model_bytes(
        graph,
        "avatar_mf tools/build_acoustic_model.py",
        {
            "phones": ",".join(phones),
            "score_floor": repr(SCORE_FLOOR),
            "score_scale": repr(SCORE_SCALE),
            "source": "pocketsphinx 5.1.1 model/en-us/en-us (means, variances, mdef)",
        },
    )
