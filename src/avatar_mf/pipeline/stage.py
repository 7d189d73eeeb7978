"""The one call shape of every pipeline stage, whatever its kind.

A stage kind (:class:`StageKind`) is one function of the TR 26.813 call flow. A lab selects the
implementation of each kind by name in ``[pipeline.<kind>]`` (found through the entry point
group ``avatar_mf.stages.<kind>``, :mod:`.registry`); the name's factory is called once per
node with the table's ``options`` and gives a :class:`StageProvider`. For every avatar session
the provider :meth:`~StageProvider.open` s a :class:`Stage`: per-session state lives there,
shared state (a loaded model, the scenes of the rooms) in the provider.

A stage says which frame classes it :attr:`~Stage.accepts`; the session's pipeline hands it
those, one at a time and in order, and its :meth:`~Stage.process` yields the frames that
result (an async generator: it may await the executor, or pace its output on the clock).
Frames it does not accept go past it. Anything that takes more than a fraction of a
millisecond runs in :attr:`StageContext.run_blocking` (a bounded worker pool), never on the
event loop. An exception out of ``process`` becomes a
:class:`~avatar_mf.pipeline.frames.StageError` frame: ``code`` and ``retryable`` are read from
the exception when it carries them (:class:`StageFailure` does), so the UE gets a precise
error and the session goes on.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from avatar_mf.clock import Clock
from avatar_mf.pipeline.frames import Frame

_P = ParamSpec("_P")
_T = TypeVar("_T")


class StageKind(enum.StrEnum):
    """The stage kinds, in the order a session's pipeline runs them."""

    #: D.1 alternative 1: the network builds a base avatar (from images, or procedurally).
    BASE_AVATAR = "base_avatar"
    #: D.3 alternative 1: the network makes animation data (from text; voice, video later).
    ANIMATION_DATA = "animation_data"
    #: Interoperability: converts base avatars and animation streams between formats.
    CONVERTER = "converter"
    #: D.4: who animates the avatar (the receiver, or the network rendering video).
    ANIMATION = "animation"
    #: B, C: the room's scene description.
    SCENE = "scene"


class BlockingRunner(Protocol):
    """Runs a blocking call off the event loop (the node's bounded stage executor)."""

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T: ...


@dataclass(frozen=True, slots=True)
class StageContext:
    """What a stage gets for one session: who it serves, time, and the worker pool."""

    call_id: str
    #: The participant id of the session in its room.
    participant: str
    #: The subscriber identity (P-Asserted-Identity or From URI).
    identity: str
    room: str
    clock: Clock
    executor: BlockingRunner
    #: Animation units per second for animation the network makes.
    rate: float = 30.0
    #: Log fields that name the call (call_id, session_id, room).
    log_extra: Mapping[str, object] = field(default_factory=dict)
    #: The animation inputs the session's last hello agreed (TR 26.813 A.1: ``video``,
    #: ``voice`` ...; empty before a hello); None where no session negotiates (tests, tools).
    #: A stage that takes media every call carries (RTP audio, video) uses it to work only for
    #: the sessions that asked.
    agreed_inputs: Callable[[], tuple[str, ...]] | None = None


@runtime_checkable
class Stage(Protocol):
    """One stage of one session's pipeline."""

    @property
    def accepts(self) -> tuple[type[Frame], ...]:
        """The frame classes this stage takes; others go past it."""
        ...

    async def setup(self) -> None:
        """Before the first frame (acquire per-session resources)."""
        ...

    def process(self, frame: Frame) -> AsyncIterator[Frame]:
        """The frames that result from ``frame`` (an async generator)."""
        ...

    async def teardown(self) -> None:
        """After the last frame, also after a failure; must not raise."""
        ...


class InlineStage(Stage, Protocol):
    """A stage that can handle some frames at once, without awaiting (optional).

    The runner calls :meth:`process_inline` instead of queueing a frame when the stage has
    nothing waiting; it returns the resulting frames, or None to have the frame queued for
    :meth:`~Stage.process` as usual. It must be cheap (microseconds) and must not block.
    """

    def process_inline(self, frame: Frame) -> Sequence[Frame] | None: ...


class TimedStage(Stage, Protocol):
    """A stage that also makes frames on its own time, with no frame coming in (optional).

    Before :meth:`~Stage.setup` the pipeline calls :meth:`bind_output` with a callable that
    sends a frame on to the stages after this one (as if ``process`` had yielded it). The
    stage calls it from its own timer task (which it ends in ``teardown``); after the pipeline
    closes, the callable drops what it is given.
    """

    def bind_output(self, emit: Callable[[Frame], None]) -> None: ...


@runtime_checkable
class StageProvider(Protocol):
    """What a ``[pipeline.<kind>]`` name builds, once per node: opens a stage per session."""

    def open(self, context: StageContext) -> Stage: ...


@runtime_checkable
class ClosableProvider(Protocol):
    """A provider holding node-wide resources (worker processes, models, GL contexts): the
    node calls :meth:`close` once, when it stops, for the providers it runs and for those a
    reload replaced (their sessions may still use them until then)."""

    def close(self) -> None: ...


class StageBase:
    """Convenience base: no-op setup and teardown, nothing accepted."""

    accepts: tuple[type[Frame], ...] = ()

    async def setup(self) -> None:
        return None

    async def teardown(self) -> None:
        return None

    def process(self, frame: Frame) -> AsyncIterator[Frame]:
        raise NotImplementedError(f"{type(self).__name__} accepts no {type(frame).__name__}")


class StageFailure(Exception):
    """A stage cannot do what a frame asked; ``code`` is the error code the UE gets.

    ``rejected``: the UE's input was at fault (a corrupt avatar, a stale patch), not the
    stage; counted apart in ``/metrics``.
    """

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, rejected: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.rejected = rejected


#: A factory from the registry: called with the ``options`` table, gives the provider.
ProviderFactory = Callable[..., StageProvider]

#: Awaitable hook type used by the runner for teardown bookkeeping.
Closer = Callable[[], Awaitable[None]]


def options_repr(options: Mapping[str, Any]) -> str:
    """The options of a stage as one log-friendly line."""
    return ", ".join(f"{k}={v!r}" for k, v in sorted(options.items())) or "no options"
