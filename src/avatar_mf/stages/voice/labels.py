"""Viseme classes of phones, and the 5 coarse mouth groups the quality goal is scored on.

The mapping is issue 13's (CMU/ARPAbet phones, the set of pocketsphinx's English model and of
its alignments): P/B/M -> PP, F/V -> FF, TH/DH -> TH, T/D -> DD, K/G/NG/HH -> kk,
CH/JH/SH/ZH -> CH, S/Z -> SS, N/L -> nn, R/ER -> RR, AA/AE/AH/AY/AW -> aa, EH/EY -> E,
IH/IY/Y -> ih, AO/OW/OY -> oh, UH/UW/W -> ou, silence and noise -> sil. The 15 viseme names are
:data:`avatar_mf.arf.blendshapes.VISEMES`. Coarse groups: closed = PP, FF; open = aa;
round = CH, RR, oh, ou; wide = the other speech visemes; sil.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import VISEME_INDEX, VISEMES

_GROUPS: Final = {
    "PP": "P B M",
    "FF": "F V",
    "TH": "TH DH",
    "DD": "T D",
    "kk": "K G NG HH",
    "CH": "CH JH SH ZH",
    "SS": "S Z",
    "nn": "N L",
    "RR": "R ER",
    "aa": "AA AE AH AY AW",
    "E": "EH EY",
    "ih": "IH IY Y",
    "oh": "AO OW OY",
    "ou": "UH UW W",
}

#: ARPAbet phone (no stress digits) -> viseme; anything else is ``sil``.
PHONE_VISEME: Final[Mapping[str, str]] = MappingProxyType(
    {phone: viseme for viseme, phones in _GROUPS.items() for phone in phones.split()}
)

#: The 5 coarse groups, in class-index order.
COARSE: Final[tuple[str, ...]] = ("sil", "closed", "open", "round", "wide")
_COARSE_OF: Final = {
    "sil": "sil",
    "PP": "closed",
    "FF": "closed",
    "aa": "open",
    "CH": "round",
    "RR": "round",
    "oh": "round",
    "ou": "round",
}
#: (15,) coarse class index of each viseme, :data:`VISEMES` order.
COARSE_OF_VISEME: Final[NDArray[np.int64]] = np.array(
    [COARSE.index(_COARSE_OF.get(v, "wide")) for v in VISEMES], dtype=np.int64
)


def viseme_of(phone: str) -> str:
    """The viseme of an ARPAbet phone (stress digits and case ignored); ``sil`` otherwise."""
    return PHONE_VISEME.get(phone.strip().upper().rstrip("012"), "sil")


@dataclass(frozen=True, slots=True)
class PhoneSpan:
    """One aligned phone: start and end in seconds."""

    phone: str
    start: float
    end: float


def read_alignment(path: Path) -> tuple[PhoneSpan, ...]:
    """Phones of a pocketsphinx JSON alignment (``*.phone.json``: words with their phones,
    ``b`` begin and ``d`` duration in seconds)."""
    document = json.loads(path.read_text())
    spans: list[PhoneSpan] = []
    for word in document.get("w", ()):
        for phone in word.get("w", ()):
            begin = float(phone["b"])
            spans.append(PhoneSpan(str(phone["t"]), begin, begin + float(phone["d"])))
    return tuple(spans)


def frame_labels(spans: tuple[PhoneSpan, ...], times: NDArray[np.float64]) -> NDArray[np.int64]:
    """The viseme index (:data:`VISEMES` order) at each time; ``sil`` outside every phone."""
    out = np.full(times.size, VISEME_INDEX["sil"], dtype=np.int64)
    for span in spans:
        inside = (times >= span.start) & (times < span.end)
        out[inside] = VISEME_INDEX[viseme_of(span.phone)]
    return out
