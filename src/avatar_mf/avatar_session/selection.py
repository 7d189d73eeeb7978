"""Which animation-data stages one session uses (TR 26.813 D.3 alternative 1, chosen by A.1).

A node may run several animation-data stages at once (``[pipeline.animation_data] names``).
Each provider declares the animation inputs it takes (``animation_inputs``, names of
:class:`~avatar_mf.protocol.names.AnimationInput`): ``text`` (the text stage), ``voice`` (the
voice stage), ``video`` and ``images`` (the camera stage). Every session's pipeline opens them
all; :func:`select` decides which inputs of the session reach them, and so which stages work
for it:

* after a hello, exactly the inputs the negotiation agreed
  (:mod:`~avatar_mf.avatar_session.negotiation`: only inputs a configured stage takes, and
  never voice together with video: video wins). A session that agreed none sends no input to
  any of them, so they make no units for it; ``animation text`` and ``animation image``
  messages for an input not agreed are answered ``unsupported``;
* before any hello, the inputs a UE sends as explicit requests (:data:`REQUESTS`: text in
  ``animation text``, pictures in ``animation image``; the message is the ask, as for UEs that
  never send a hello); the media every call carries (RTP voice and video) only once a hello
  agrees it, and so is the raw audio of an ``avatar-mf-audio`` channel (voice without RTP,
  refused ``unsupported`` until then);
* an input no configured stage declares (a lab's own stage that names none) is not gated.

A new hello selects again from scratch (the negotiation is re-run). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from avatar_mf.pipeline.frames import AudioIn, Frame, ImageInput, TextInput, VideoIn
from avatar_mf.protocol.names import AnimationInput

__all__ = ["FRAME_INPUTS", "REQUESTS", "Offer", "Selection", "select"]

#: The animation input each input frame carries.
FRAME_INPUTS: Final[Mapping[type[Frame], str]] = MappingProxyType(
    {
        TextInput: AnimationInput.TEXT.value,
        AudioIn: AnimationInput.VOICE.value,
        VideoIn: AnimationInput.VIDEO.value,
        ImageInput: AnimationInput.IMAGES.value,
    }
)

#: Inputs a UE sends as explicit requests (a message each): served before any hello.
REQUESTS: Final = frozenset({AnimationInput.TEXT.value, AnimationInput.IMAGES.value})


@dataclass(frozen=True, slots=True)
class Offer:
    """One configured animation-data stage: its name and the inputs it declares."""

    name: str
    inputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Selection:
    """What one session uses now.

    Attributes:
        inputs: the inputs that reach the session's stages.
        stages: the names of the stages that take them, in configured order.
        offered: every input some configured stage declares (the others are not gated).
        negotiated: a hello's agreement decided it (False: no hello yet).
    """

    inputs: frozenset[str] = frozenset()
    stages: tuple[str, ...] = ()
    offered: frozenset[str] = frozenset()
    negotiated: bool = False

    def allows(self, name: str) -> bool:
        """Whether input ``name`` goes to the session's pipeline."""
        return name in self.inputs or name not in self.offered

    def takes(self, frame_type: type[Frame]) -> bool:
        """Whether frames of ``frame_type`` go to the session's pipeline."""
        name = FRAME_INPUTS.get(frame_type)
        return name is None or self.allows(name)


def select(offers: Iterable[Offer], agreed: Sequence[str] | None) -> Selection:
    """The selection for ``agreed`` (the last hello's agreed inputs; None: no hello yet)."""
    offers = tuple(offers)
    offered = frozenset(name for offer in offers for name in offer.inputs)
    wanted = REQUESTS if agreed is None else frozenset(agreed)
    inputs = wanted & offered
    stages = tuple(offer.name for offer in offers if inputs.intersection(offer.inputs))
    return Selection(inputs, stages, offered, negotiated=agreed is not None)
