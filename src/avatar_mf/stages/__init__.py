"""The four stage kinds of the avatar pipeline, one package each (TR 26.813 call flow):

- :mod:`.base_avatar`: base-avatar generation (D.1 alternative 1, network-centric).
- :mod:`.animation_data`: animation-data generation (D.3 alternative 1, network-centric).
- :mod:`.animation`: avatar animation (D.4).
- :mod:`.scene`: scene management (B, C).

Each package defines its stage as a :class:`typing.Protocol` and ships a default
implementation. Implementations are chosen by name in the config (``[pipeline]``) and found
through the entry point group ``avatar_mf.stages.<kind>`` (see :mod:`.registry`), so a lab can
plug in its own without touching the product.
"""
