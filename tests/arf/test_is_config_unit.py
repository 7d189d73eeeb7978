"""``is_config_unit``: a CONFIG unit told from its header byte, without decoding."""

from __future__ import annotations

from avatar_mf.arf import BlendshapeUnit, ConfigUnit, encode_unit, is_config_unit


def test_config_units_and_the_rest() -> None:
    config = encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))
    blend = encode_unit(BlendshapeUnit.dense(0, (0.5, 0.25)))
    assert is_config_unit(config)
    assert not is_config_unit(blend)
    assert not is_config_unit(config[:4])  # shorter than a unit header
    assert not is_config_unit(config.decode("latin-1"))  # text is never a unit
