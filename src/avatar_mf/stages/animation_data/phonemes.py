"""espeak-ng phoneme mnemonics to the 15 visemes (MPEG-4 FAP visemes + silence, OVR names).

espeak-ng names phonemes with short ASCII mnemonics (a Kirshenbaum-like alphabet, at most 8
bytes). What it emits for English, measured with espeak-ng 1.51 on a few thousand words of
mixed prose, code docs and test sentences (voices ``en-us``, ``en``, ``en-gb-x-rp``,
``en-029``):

* consonants ``p b m f v T D t d t# t2 t[ s z S Z tS dZ k g N x h n n- l @L r r- w j ?``
  (``t#`` is the American flap, ``t2``/``t[`` variants of t, ``n-``/``@L``/``r-`` syllabic
  n, l, r, ``?`` a glottal stop);
* vowels ``@ @2 @5 @- 3 3: a a# aa A: A@ 0 V E e@ eI i i: i@ i@3 I I# I2 O: O2 O@ o@ OI oU
  U U@ u: aI aI3 aI@ aU`` (``0`` is the LOT vowel, ``V`` STRUT, ``3``/``3:`` r-coloured,
  ``@``-variants are schwas, ``a#`` a reduced a);
* pauses ``_`` and ``_:`` (``_!``, ``_|``, ``_^_`` also exist), and ``;``, a zero-length
  marker espeak-ng puts between vowels in hiatus. Language switches show up as ``(en)``.

:data:`ENGLISH` maps every one of these explicitly. Diphthongs become two viseme targets
(``aI`` is ``aa`` then ``ih``, ``oU`` is ``oh`` then ``ou`` ...), so the mouth glides. Every
other mnemonic (other languages) goes through :func:`visemes_for`: exact entry, else the name
with trailing modifier characters (length ``:``, digits, ``#``, ``-``, ``~`` nasal, ``^``
palatal, ``;``, ``[``, ``.``) stripped one at a time, else its first letter in :data:`BASE`,
else a default (``E`` for vowel-like names, ``DD`` otherwise) that callers count as unknown.

Grouping follows the MPEG-4 / OVR viseme classes (standards.md section 6): PP p b m; FF f v;
TH th dh; DD t d; kk k g (and ng, h, x: the tongue works at the back, the lips stay loose);
CH ch jh sh zh; SS s z; nn n l; RR r (and the r-coloured vowels); aa, E, ih, oh, ou vowels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

#: A phoneme's viseme targets: ``(viseme, share of the phoneme's duration)``, shares sum to 1.
Targets = tuple[tuple[str, float], ...]

SILENCE: Final = "sil"


def _one(viseme: str) -> Targets:
    return ((viseme, 1.0),)


def _two(first: str, second: str, split: float = 0.55) -> Targets:
    return ((first, split), (second, 1.0 - split))


_ENGLISH: dict[str, Targets] = {
    # stops, fricatives, affricates, nasals, liquids, glides
    **{p: _one("PP") for p in ("p", "b", "m")},
    **{p: _one("FF") for p in ("f", "v")},
    **{p: _one("TH") for p in ("T", "D")},
    **{p: _one("DD") for p in ("t", "d", "t#", "t2", "t[", "d[", "d#")},
    **{p: _one("kk") for p in ("k", "g", "N", "x", "h", "?")},
    **{p: _one("CH") for p in ("S", "Z", "tS", "dZ")},
    **{p: _one("SS") for p in ("s", "z")},
    **{p: _one("nn") for p in ("n", "n-", "l", "@L", "l/", "L")},
    **{p: _one("RR") for p in ("r", "r-", "3", "3:", "R")},
    "w": _one("ou"),
    "j": _one("ih"),
    # monophthongs
    **{p: _one("aa") for p in ("a", "a#", "aa", "A:", "A", "0", "V", "&")},
    **{p: _one("E") for p in ("E", "e", "@", "@2", "@5", "@-", "e:")},
    **{p: _one("ih") for p in ("I", "I#", "I2", "i", "i:")},
    **{p: _one("oh") for p in ("O", "O:", "O2", "o", "o:")},
    **{p: _one("ou") for p in ("U", "u", "u:")},
    # diphthongs and r-coloured vowels: a glide between two targets
    "aI": _two("aa", "ih"),
    "aI3": _two("aa", "RR"),
    "aI@": (("aa", 0.45), ("ih", 0.3), ("E", 0.25)),
    "aU": _two("aa", "ou"),
    "eI": _two("E", "ih"),
    "oU": _two("oh", "ou"),
    "OI": _two("oh", "ih"),
    "i@": _two("ih", "E"),
    "i@3": _two("ih", "RR"),
    "e@": _two("E", "E"),
    "U@": _two("ou", "E"),
    "A@": _two("aa", "RR", 0.6),
    "O@": _two("oh", "RR", 0.6),
    "o@": _two("oh", "RR", 0.6),
}

#: English (``en``, ``en-us`` and the other English voices): every mnemonic espeak-ng emits.
ENGLISH: Final[Mapping[str, Targets]] = MappingProxyType(_ENGLISH)

#: Single-letter fallbacks for the rest of espeak-ng's alphabet (other languages).
BASE: Final[Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys("pbmB", "PP"),  # B: bilabial fricative (Spanish b/v between vowels)
        **dict.fromkeys("fv", "FF"),
        **dict.fromkeys("TD", "TH"),
        **dict.fromkeys("td", "DD"),
        **dict.fromkeys("kgxGqQXhHN?c", "kk"),
        **dict.fromkeys("SZCJ", "CH"),  # C: German ich-Laut, J: palatal
        **dict.fromkeys("sz", "SS"),
        **dict.fromkeys("nlL", "nn"),
        **dict.fromkeys("rR*3", "RR"),
        **dict.fromkeys("aA&V0", "aa"),
        **dict.fromkeys("eE@", "E"),
        **dict.fromkeys("iIj", "ih"),
        **dict.fromkeys("oOWY", "oh"),  # W: open-mid front rounded, Y: front rounded
        **dict.fromkeys("uUwy", "ou"),
    }
)

#: Characters espeak-ng appends to a base phoneme (length, variants, nasal, palatal ...).
MODIFIERS: Final = frozenset(":;#-~^.![]'`,=0123456789/|\"")
_VOWELISH: Final = frozenset("aeiouyAEIOUVWY@&03")


def is_pause(phoneme: str) -> bool:
    """espeak-ng pauses: ``_``, ``_:``, ``_!``, ``_|``, ``_^_`` ..."""
    return phoneme.startswith("_")


def is_marker(phoneme: str) -> bool:
    """Zero-length marks: ``;`` (hiatus), ``(en)`` (language switch), stress/punctuation
    marks. They carry no articulation; the previous phoneme continues."""
    if not phoneme or phoneme.startswith("("):
        return True
    return not any(ch.isalnum() or ch in "@&?*_" for ch in phoneme)


def visemes_for(phoneme: str, table: Mapping[str, Targets] = ENGLISH) -> Targets | None:
    """The viseme targets of ``phoneme``, or ``None`` when nothing in ``table`` or
    :data:`BASE` matches (see :func:`default_targets`)."""
    if is_pause(phoneme):
        return _one(SILENCE)
    found = table.get(phoneme)
    if found is not None:
        return found
    name = phoneme
    while len(name) > 1 and name[-1] in MODIFIERS:
        name = name[:-1]
        found = table.get(name)
        if found is not None:
            return found
    for ch in name:
        if ch in BASE:
            return _one(BASE[ch])
    return None


def default_targets(phoneme: str) -> Targets:
    """What an unknown phoneme shows: ``E`` (a half-open mouth) if it looks like a vowel,
    ``DD`` (a neutral, slightly open consonant) otherwise."""
    return _one("E" if phoneme[:1] in _VOWELISH else "DD")


@dataclass(frozen=True, slots=True)
class VisemeSegment:
    """One viseme target over ``[start, end)`` seconds, from ``phoneme``."""

    start: float
    end: float
    viseme: str
    phoneme: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class VisemeTrack:
    """The viseme segments of an utterance, in time order, covering ``[0, end)``."""

    segments: tuple[VisemeSegment, ...]
    end: float
    #: Mnemonics that matched nothing and got :func:`default_targets`, with their counts.
    unknown: Mapping[str, int] = field(default_factory=dict)


def phonemes_to_visemes(
    phonemes: Sequence[tuple[float, str]],
    end: float,
    *,
    table: Mapping[str, Targets] = ENGLISH,
) -> VisemeTrack:
    """Viseme segments from ``(start_seconds, mnemonic)`` events (sorted by start) ending at
    ``end`` seconds.

    Each phoneme lasts until the next one starts (markers are skipped: the phoneme before a
    marker lasts until the phoneme after it). A phoneme with several targets (a diphthong) is
    split by the shares of its table entry. Time before the first phoneme is silence.
    Zero-length phonemes (two events at the same time) are dropped.
    """
    events = [(t, p) for t, p in phonemes if not is_marker(p)]
    unknown: Counter[str] = Counter()
    segments: list[VisemeSegment] = []
    if events and events[0][0] > 0.0:
        segments.append(VisemeSegment(0.0, min(events[0][0], end), SILENCE, "_"))
    for i, (start, phoneme) in enumerate(events):
        stop = events[i + 1][0] if i + 1 < len(events) else end
        stop = min(stop, end)
        if stop <= start:
            continue
        targets = visemes_for(phoneme, table)
        if targets is None:
            unknown[phoneme] += 1
            targets = default_targets(phoneme)
        at = start
        for k, (viseme, share) in enumerate(targets):
            until = stop if k == len(targets) - 1 else at + share * (stop - start)
            segments.append(VisemeSegment(at, until, viseme, phoneme))
            at = until
    if not events and end > 0.0:
        segments.append(VisemeSegment(0.0, end, SILENCE, "_"))
    return VisemeTrack(tuple(segments), end, dict(unknown))
