"""One avatar session's pipeline: frames in, through the configured stages, out to a sink.

:class:`SessionPipeline` owns the order of the stages (:class:`~.stage.StageKind` order: base
avatar, animation data, converter, animation, scene). A frame pushed in goes to the first stage
that accepts its class; each frame a stage yields goes on to the next stage after it that
accepts it, and a frame that no further stage accepts reaches the sink (the session, which
routes it to the participants). Frames no stage accepts at all (a UE's animation unit when the
receiver animates) reach the sink at once, without a task hop: the UE-centric relay stays a
pass-through.

Each stage has its own inbox and runs in its own task while the inbox holds frames, so a slow
stage (an utterance paced over seconds) never holds up the others. A stage that can handle a
frame in a few microseconds without awaiting (a converter passing a unit on, a filter) may
offer :meth:`~.stage.InlineStage.process_inline`: while its inbox is empty and no task runs
for it, the frame is handled there and then, in the caller's turn, with no task hop (the order
of frames is kept: with anything waiting the frame queues as usual). Per-stage queue limits
(:class:`QueueLimits`) apply each frame's :class:`~.frames.Delivery`: for real-time frames the
newest wins (the oldest droppable one waiting is dropped and counted); reliable frames are
never dropped, and past the limit a new one is refused with a ``busy``
:class:`~.frames.StageError`. An exception out of a stage becomes a ``StageError`` frame for
the sink; the pipeline, the session and the process go on. A stage may also make frames on
its own time (:class:`~.stage.TimedStage`: a timer while its input is missing): they go on
from that stage exactly like the frames it yields.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avatar_mf.pipeline.frames import Delivery, Frame, StageError
from avatar_mf.pipeline.stage import Stage

log = logging.getLogger(__name__)

#: Error codes a StageError carries when the exception names none (protocol/names.py).
BUSY = "busy"
STAGE_FAILED = "stage-failed"


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How many frames may wait for one stage of one session."""

    #: Real-time frames (animation, video) waiting; past it the oldest droppable one goes.
    newest_wins: int = 3
    #: Reliable frames (text, transfers, scene) waiting; past it new ones are refused.
    reliable: int = 32


@dataclass
class PipelineStats:
    """Node-wide counters of every session's pipeline, read by ``/metrics``."""

    #: Stage failures by (stage kind, outcome): outcome is "busy", "rejected" or "failed".
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Real-time frames dropped because a stage fell behind, by frame class.
    dropped: Counter[str] = field(default_factory=Counter)
    #: Frames processed, by stage kind.
    processed: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class NamedStage:
    """A stage in a pipeline, with its kind and configured name (for errors and metrics)."""

    kind: str
    name: str
    stage: Stage


#: Client-side error codes: a refusal of the UE's input rather than a failure of the stage.
_REJECTIONS = frozenset(
    {"bad-avatar", "bad-patch", "version-conflict", "unsupported", "not-authorized", "too-large"}
)


def outcome_of(code: str) -> str:
    """The metrics outcome of an error code: busy, rejected or failed."""
    if code == BUSY:
        return "busy"
    if code in _REJECTIONS or code.startswith("bad-"):
        return "rejected"
    return "failed"


#: Not looked up yet (a route of None means: to the sink).
_UNROUTED: Any = object()


def _droppable(frame: Frame) -> bool:
    if frame.delivery is not Delivery.NEWEST_WINS:
        return False
    return not getattr(frame, "is_config", False)  # an ARF CONFIG unit is never dropped


class _Slot:
    """One stage of one pipeline: its inbox and the task draining it."""

    __slots__ = ("index", "named", "inbox", "task", "failed", "_reliable", "inline")

    def __init__(self, index: int, named: NamedStage) -> None:
        self.index = index
        self.named = named
        inline = getattr(named.stage, "process_inline", None)
        self.inline: Callable[[Frame], Sequence[Frame] | None] | None = (
            inline if callable(inline) else None
        )
        self.inbox: deque[Frame] = deque()
        self.task: asyncio.Task[None] | None = None
        self.failed = False
        self._reliable = 0


class SessionPipeline:
    def __init__(
        self,
        stages: Sequence[NamedStage],
        sink: Callable[[Frame], None],
        *,
        limits: QueueLimits | None = None,
        stats: PipelineStats | None = None,
        log_extra: Mapping[str, object] | None = None,
        final_timeout: float = 2.0,
    ) -> None:
        self._final_timeout = final_timeout
        self._slots = [_Slot(i, named) for i, named in enumerate(stages)]
        self._sink = sink
        self._limits = limits or QueueLimits()
        self.stats = stats if stats is not None else PipelineStats()
        self._log_extra = dict(log_extra or {})
        # Per start index, the slot each frame class goes to (None: the sink), filled lazily.
        self._routes: list[dict[type[Frame], _Slot | None]] = [
            {} for _ in range(len(self._slots) + 1)
        ]
        self._closed = False
        self._started = False

    @property
    def stages(self) -> tuple[NamedStage, ...]:
        return tuple(slot.named for slot in self._slots)

    @property
    def busy(self) -> bool:
        """Some stage has frames waiting or in progress."""
        return any(slot.task is not None or slot.inbox for slot in self._slots)

    def accepts(self, frame_type: type[Frame]) -> bool:
        """Some stage of this pipeline takes frames of ``frame_type``."""
        return self._route_of(frame_type, 0) is not None

    async def start(self) -> None:
        """Set every stage up; a stage that fails to set up answers its frames with errors."""
        self._started = True
        for slot in self._slots:
            bind = getattr(slot.named.stage, "bind_output", None)
            if callable(bind):
                bind(functools.partial(self._emit_from, slot))
            try:
                await slot.named.stage.setup()
            except Exception as exc:
                slot.failed = True
                log.warning(
                    "%s stage %r failed to set up: %s",
                    slot.named.kind,
                    slot.named.name,
                    exc,
                    extra=self._log_extra,
                )

    def push(self, frame: Frame) -> None:
        """Hand a frame to the pipeline (never blocks, never raises)."""
        if self._closed:
            return
        self._forward(frame, 0)

    async def aclose(self, final: Frame | None = None) -> None:
        """Stop: frames still waiting are dropped, ``final`` (a participant leaving) is run
        through the stages to the end (for at most ``final_timeout`` seconds), then every
        stage is torn down."""
        if self._closed:
            return
        self._closed = True
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        for slot in self._slots:
            slot.inbox.clear()
            if slot.task is not None:
                slot.task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                if (current := asyncio.current_task()) is not None and current.cancelling():
                    raise
        if final is not None:
            try:
                async with asyncio.timeout(self._final_timeout):
                    await self._run_through(final, 0)
            except TimeoutError:
                log.warning(
                    "pipeline: %s did not finish within %.1f s at close",
                    type(final).__name__,
                    self._final_timeout,
                    extra=self._log_extra,
                )
        for slot in self._slots:
            try:
                await slot.named.stage.teardown()
            except Exception:
                log.exception(
                    "%s stage %r failed to tear down",
                    slot.named.kind,
                    slot.named.name,
                    extra=self._log_extra,
                )

    def _emit_from(self, slot: _Slot, frame: Frame) -> None:
        """A frame a stage made on its own time (:class:`~.stage.TimedStage`)."""
        if not self._closed:
            self._forward(frame, slot.index + 1)

    # -- routing ----------------------------------------------------------------------------

    def _route_of(self, frame_type: type[Frame], start: int) -> _Slot | None:
        routes = self._routes[start]
        try:
            return routes[frame_type]
        except KeyError:
            pass
        found = None
        for slot in self._slots[start:]:
            if issubclass(frame_type, slot.named.stage.accepts):
                found = slot
                break
        routes[frame_type] = found
        return found

    def _forward(self, frame: Frame, start: int) -> None:
        # The route looked up here, not through _route_of: this runs twice per relayed unit.
        slot = self._routes[start].get(type(frame), _UNROUTED)
        if slot is _UNROUTED:
            slot = self._route_of(type(frame), start)
        if slot is None:
            self._sink(frame)
        elif slot.failed:
            self._error(slot, frame, STAGE_FAILED, f"the {slot.named.kind} stage is unavailable")
        else:
            self._offer(slot, frame)

    def _offer(self, slot: _Slot, frame: Frame) -> None:
        if slot.inline is not None and slot.task is None and not slot.inbox:
            try:
                outs = slot.inline(frame)
            except Exception as exc:
                self._failed(slot, frame, exc)
                return
            if outs is not None:
                self.stats.processed[slot.named.kind] += 1
                for out in outs:
                    self._forward(out, slot.index + 1)
                return
        limits = self._limits
        if frame.delivery is Delivery.NEWEST_WINS:
            waiting = sum(1 for f in slot.inbox if f.delivery is Delivery.NEWEST_WINS)
            if waiting >= limits.newest_wins:
                for old in slot.inbox:
                    if _droppable(old):
                        slot.inbox.remove(old)
                        self.stats.dropped[type(old).__name__] += 1
                        break
        elif slot._reliable >= limits.reliable:
            self._error(slot, frame, BUSY, f"the {slot.named.kind} stage is busy", retryable=True)
            return
        else:
            slot._reliable += 1
        slot.inbox.append(frame)
        if slot.task is None:
            slot.task = asyncio.get_running_loop().create_task(self._drain(slot))

    async def _drain(self, slot: _Slot) -> None:
        try:
            while slot.inbox:
                frame = slot.inbox.popleft()
                if frame.delivery is not Delivery.NEWEST_WINS:
                    slot._reliable -= 1
                await self._process(slot, frame)
        finally:
            slot.task = None

    async def _process(self, slot: _Slot, frame: Frame) -> None:
        named = slot.named
        try:
            async for out in named.stage.process(frame):
                self._forward(out, slot.index + 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(slot, frame, exc)
        else:
            self.stats.processed[named.kind] += 1

    def _failed(self, slot: _Slot, frame: Frame, exc: Exception) -> None:
        """A stage raised on ``frame``: log it and send the sink a StageError."""
        named = slot.named
        code = getattr(exc, "code", None)
        if not isinstance(code, str):
            code = STAGE_FAILED
        retryable = bool(getattr(exc, "retryable", False))
        if retryable and code == STAGE_FAILED:
            code = BUSY
        outcome = "rejected" if getattr(exc, "rejected", False) else outcome_of(code)
        level = logging.INFO if outcome == "rejected" else logging.WARNING
        log.log(
            level,
            "%s stage %r: %s: %s",
            named.kind,
            named.name,
            type(frame).__name__,
            exc,
            extra=self._log_extra,
        )
        self._error(
            slot,
            frame,
            code,
            str(exc) or type(exc).__name__,
            retryable=retryable,
            outcome=outcome,
        )

    async def _run_through(self, frame: Frame, start: int) -> None:
        slot = self._route_of(type(frame), start)
        if slot is None:
            self._sink(frame)
            return
        if slot.failed:
            return
        try:
            async for out in slot.named.stage.process(frame):
                await self._run_through(out, slot.index + 1)
        except Exception:
            log.exception(
                "%s stage %r failed on %s",
                slot.named.kind,
                slot.named.name,
                type(frame).__name__,
                extra=self._log_extra,
            )

    def _error(
        self,
        slot: _Slot,
        frame: Frame,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        outcome: str | None = None,
    ) -> None:
        self.stats.errors[slot.named.kind, outcome or outcome_of(code)] += 1
        self._sink(
            StageError(
                participant=frame.participant,
                stage=slot.named.name,
                kind=slot.named.kind,
                code=code,
                message=message[:1024],
                retryable=retryable,
                message_id=frame.request_id,
                cause=type(frame).__name__,
            )
        )
