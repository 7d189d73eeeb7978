"""Issue 13's phone -> viseme mapping and the 5 coarse groups, and alignment reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar_mf.arf.blendshapes import VISEME_INDEX, VISEMES
from avatar_mf.stages.voice.labels import (
    COARSE,
    COARSE_OF_VISEME,
    PhoneSpan,
    frame_labels,
    read_alignment,
    viseme_of,
)

# Written out from the issue's text, not from the module.
ISSUE = (
    "P/B/M -> PP, F/V -> FF, TH/DH -> TH, T/D -> DD, K/G/NG/HH -> kk, CH/JH/SH/ZH -> CH, "
    "S/Z -> SS, N/L -> nn, R/ER -> RR, AA/AE/AH/AY/AW -> aa, EH/EY -> E, IH/IY/Y -> ih, "
    "AO/OW/OY -> oh, UH/UW/W -> ou"
)


def test_every_phone_of_the_issue_maps_to_its_viseme() -> None:
    for rule in ISSUE.split(", "):
        phones, viseme = rule.split(" -> ")
        for phone in phones.split("/"):
            assert viseme_of(phone) == viseme, phone
            assert viseme_of(phone.lower() + "1") == viseme  # stress digits, case


def test_silence_and_noise_are_sil() -> None:
    for token in ("SIL", "+NSN+", "+SPN+", "<sil>", "", "XX"):
        assert viseme_of(token) == "sil"


def test_coarse_groups() -> None:
    groups = {
        "closed": {"PP", "FF"},
        "open": {"aa"},
        "round": {"CH", "RR", "oh", "ou"},
        "sil": {"sil"},
    }
    for viseme in VISEMES:
        name = COARSE[COARSE_OF_VISEME[VISEME_INDEX[viseme]]]
        expected = next((g for g, members in groups.items() if viseme in members), "wide")
        assert name == expected, viseme


def test_alignment_and_frame_labels(corpus: list[object]) -> None:
    path = Path(__file__).parent / "data" / "sense_and_sensibility_01_austen_64kb-0880.phone.json"
    spans = read_alignment(path)
    assert spans[0].phone == "SIL" and spans[0].start == 0.0
    assert all(a.end <= b.start + 1e-9 for a, b in zip(spans, spans[1:], strict=False))
    labels = frame_labels(
        (PhoneSpan("M", 0.1, 0.2), PhoneSpan("AA", 0.2, 0.4)), np.array([0.05, 0.15, 0.3, 0.5])
    )
    assert [VISEMES[i] for i in labels] == ["sil", "PP", "aa", "sil"]
