"""The viseme classifier: hop features in a short context window -> 15 viseme probabilities.

The features of a hop are its 42 phone scores from pocketsphinx's acoustic model (the
"tandem" front end: :mod:`.sphinx_mfcc` and :mod:`.acoustic_model`). The input of one
decision is the features of :data:`CONTEXT_BEFORE` hops before the decided hop, the hop
itself and ``lookahead`` hops after it (10 ms each; the front end's deltas look
:data:`.sphinx_mfcc.DELTA_DELAY` hops further), standardised with the training set's mean
and spread; the model is a one-hidden-layer perceptron (tanh) with a
softmax over the 15 visemes of :data:`avatar_mf.arf.blendshapes.VISEMES`. The coarse 5-group
decision sums the probabilities of each group (:data:`.labels.COARSE_OF_VISEME`).

It is trained by ``tools/train_voice_visemes.py`` on real recorded speech with phone
alignments (docs/voice-animation.md says which) with plain numpy (full-batch Adam on the
cross-entropy, L2): :class:`VisemeModel` is the trained model in numpy (training and
evaluation); the tool exports it to ONNX (:mod:`.onnx_export`) and the stage runs the shipped
``viseme_model.onnx`` in onnxruntime (:mod:`.onnx_model`). Both satisfy
:class:`VisemeClassifier`, the interface the stage needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.labels import COARSE_OF_VISEME

#: Hops of context before the decided hop.
CONTEXT_BEFORE: Final = 6
#: Default hops after it (30 ms; with the front end's 30 ms the stage looks 60 ms ahead).
LOOKAHEAD: Final = 3
#: Class weighting of :func:`fit` (0: plain frame accuracy, see there).
CLASS_POWER: Final = 0.0
#: Features per hop: the 42 phone scores of the acoustic model.
HOP_FEATURES: Final = 42


class VisemeClassifier(Protocol):
    """What the stage needs of a model: its look-ahead, input width and probabilities."""

    @property
    def lookahead(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    def probabilities(self, inputs: NDArray[np.float64]) -> NDArray[np.float64]: ...


def stack_context(hops: NDArray[np.float64], lookahead: int) -> NDArray[np.float64]:
    """(n, (CONTEXT_BEFORE + 1 + lookahead) * HOP_FEATURES): the context of every hop, edges
    padded with the first and last rows (offline: training and evaluation)."""
    n = hops.shape[0]
    index = np.arange(n)[:, None] + np.arange(-CONTEXT_BEFORE, lookahead + 1)[None, :]
    index = np.clip(index, 0, n - 1)
    stacked: NDArray[np.float64] = hops[index].reshape(n, -1)
    return stacked


@dataclass(frozen=True, slots=True)
class VisemeModel:
    """Trained weights (frozen; shared by every session of a node)."""

    lookahead: int
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64]
    b2: NDArray[np.float64]

    def probabilities(self, inputs: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, 15) viseme probabilities of (n, D) stacked inputs."""
        hidden = np.tanh(((inputs - self.mean) / self.scale) @ self.w1 + self.b1)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        out: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return out

    @property
    def input_size(self) -> int:
        return int(self.mean.size)


def coarse_probabilities(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    """(n, 5) group probabilities from (n, 15) viseme probabilities."""
    out = np.zeros((probabilities.shape[0], int(COARSE_OF_VISEME.max()) + 1))
    np.add.at(out.T, COARSE_OF_VISEME, probabilities.T)
    return out


def fit(
    inputs: NDArray[np.float64],
    labels: NDArray[np.int64],
    *,
    lookahead: int,
    hidden: int = 32,
    steps: int = 400,
    l2: float = 3e-2,
    rate: float = 0.01,
    seed: int = 0,
    class_power: float = CLASS_POWER,
    sample_weight: NDArray[np.float64] | None = None,
) -> VisemeModel:
    """Train a model on (n, D) stacked inputs and (n,) viseme indices (deterministic).

    ``class_power`` weights each class by (its share x 15) ** -power: 0 trains for frame
    accuracy (every frame counts once), 0.5 lifts rare visemes. ``sample_weight`` (n,)
    multiplies it (e.g. every speaker group counting as much as another)."""
    rng = np.random.default_rng(seed)
    classes = 15
    mean = inputs.mean(axis=0)
    scale = inputs.std(axis=0) + 1e-6
    x = (inputs - mean) / scale
    n, d = x.shape
    onehot = np.zeros((n, classes))
    onehot[np.arange(n), labels] = 1.0
    counts = onehot.sum(axis=0) + 1.0
    weight = (n / (classes * counts)) ** class_power
    weights = weight[labels] * (1.0 if sample_weight is None else sample_weight)
    weights = weights / weights.mean()
    params = [
        rng.normal(0.0, 1.0 / np.sqrt(d), (d, hidden)),
        np.zeros(hidden),
        rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, classes)),
        np.zeros(classes),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        w1, b1, w2, b2 = params
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g_logits = (p - onehot) * weights[:, None] / n
        g_w2 = h.T @ g_logits + l2 * w2
        g_b2 = g_logits.sum(axis=0)
        g_h = (g_logits @ w2.T) * (1.0 - h * h)
        g_w1 = x.T @ g_h + l2 * w1
        g_b1 = g_h.sum(axis=0)
        for i, g in enumerate((g_w1, g_b1, g_w2, g_b2)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat = m[i] / (1.0 - 0.9**step)
            v_hat = v[i] / (1.0 - 0.999**step)
            params[i] = params[i] - rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    return VisemeModel(lookahead, mean, scale, params[0], params[1], params[2], params[3])
