"""Format conversion (TR 26.813 section 4 interoperability): the MF as the gateway.

The ``converter`` stage kind: animation streams converted per receiver through the common
format (ARKit-52, :mod:`.animation`, :mod:`.profiles`), with per-audience expression filters
(:mod:`.filters`), and base avatars converted to the formats receivers accept (:mod:`.avatars`).
"""
