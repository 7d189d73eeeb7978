"""The ``photo`` base-avatar generator: an avatar built from the caller's photos (issue 14).

:class:`~.generator.PhotoGenerator` is the entry point (``avatar_mf.stages.base_avatar``
``photo``); its steps are small modules: :mod:`.images` (decoding, limits), :mod:`.anchors` and
:mod:`.template` (where the face model's landmarks lie on the product's head),
:mod:`.alignment` (photos to one face shape), :mod:`.expression` (the photo's expression
taken out), :mod:`.deformation` (the smooth map),
:mod:`.transfer` (rig and blendshapes through it), :mod:`.colouring` (the photo on the
vertices), :mod:`.errors` (the refusal codes). docs/avatars.md shows what it makes.
"""
