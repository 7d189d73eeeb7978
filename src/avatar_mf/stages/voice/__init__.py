"""Voice-driven animation data (TR 26.813 D.3.1 network-centric, voice source; issue 13).

The caller's decoded RTP audio (:class:`~avatar_mf.pipeline.frames.AudioIn`, 16 kHz, 20 ms)
becomes BLENDSHAPE and head JOINT units at the session's rate, timed on the audio's RTP
timeline: :mod:`.features` (streaming MFCC front end), :mod:`.model` (viseme classifier trained
on real recorded speech), :mod:`.labels` (the issue's phone -> viseme mapping and 5 groups),
:mod:`.face` (visemes, loudness, prosody and blinks -> weights), :mod:`.stage` (the
``voice`` animation-data stage).
"""
