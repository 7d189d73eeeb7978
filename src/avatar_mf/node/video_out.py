"""Who is shown which network-rendered avatar (TR 26.813 D.4 alternative 1; TS 26.264 7.3.2).

The video plane asks :class:`VideoPicker` for each video stream the MF sends on
(``VideoPlane.picker``: call id -> a reader of rendered frames, or None). The rule:

* the node renders only with a network-animating animation stage (``[pipeline.animation]
  name = "network"``: every session's avatar is rendered into its ``VideoSource``);
* the call's receiver gets video when its avatar session agreed network rendering (TR 26.813
  A.1, :mod:`avatar_mf.avatar_session.negotiation`: a hello asking for it, or the Contact's
  ``+sip.3gpp-avatar-support="avatar-assisted"``), or, before any hello, when its Contact
  says ``avatar-assisted``;
* it is shown the avatar of the first other participant of its room (room join order) whose
  avatar is being rendered (it has an avatar: uploaded, generated or selected), until that
  participant leaves (then the next one; asked again every 0.2 s while there is none). A call
  with no avatar session (no data channel) or alone in its room is shown nothing (RTCP only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avatar_mf.avatar_session.hub import AvatarHub
from avatar_mf.avatar_session.session import AvatarSession
from avatar_mf.pipeline.stage import StageKind
from avatar_mf.sip.feature_tags import AvatarSupport
from avatar_mf.stages.animation.network import NetworkAnimation
from avatar_mf.stages.animation.video import VideoReader


@dataclass(frozen=True, slots=True)
class _Setting:
    name: str
    options: Mapping[str, Any]


def with_render_defaults(settings: Mapping[str, Any], render: Any) -> dict[str, Any]:
    """``[pipeline.<kind>]`` settings where the network animation stage's options default to
    ``[render]`` (size, rate, background, samples, relaxing, workers, threads) and
    ``watched_only`` (render a session only while a receiver is shown it); options given in
    ``[pipeline.animation.options]`` win."""
    out = dict(settings)
    animation = out.get(StageKind.ANIMATION.value)
    if animation is None or animation.name != "network":
        return out
    defaults: dict[str, Any] = {
        "rate": render.rate,
        "width": render.even_size,
        "height": render.even_size,
        "background": list(render.background_rgb),
        "samples": render.samples,
        "relax_after": render.relax_after,
        "relax_time": render.relax_time,
        "threads": render.threads,
        # Rendering costs ~28 % of a core per session: only for sessions someone is shown.
        "watched_only": True,
    }
    if render.workers:
        defaults["workers"] = render.workers
    out[StageKind.ANIMATION.value] = _Setting(
        animation.name, {**defaults, **dict(animation.options)}
    )
    return out


def network_animation(hub: AvatarHub) -> NetworkAnimation | None:
    """The node's network-animating stage provider, if it has one."""
    for stage in hub.stages:
        if stage.kind == StageKind.ANIMATION and isinstance(stage.provider, NetworkAnimation):
            return stage.provider
    return None


def wants_network_rendering(session: AvatarSession) -> bool:
    """Whether this session's UE is sent the rendered avatar (module docs)."""
    if session.agreement is not None:
        return session.agreement.rendering == "network"
    return session.info.avatar_tags.avatar_support is AvatarSupport.ASSISTED


class VideoPicker:
    """``VideoPlane.picker`` for one node (see the module docstring)."""

    def __init__(self, hub: AvatarHub, retired: Sequence[NetworkAnimation] = ()) -> None:
        """``retired``: providers a reload replaced, still rendering their sessions."""
        self.hub = hub
        self.retired = retired

    @property
    def provider(self) -> NetworkAnimation | None:
        """The hub's network animation stage now (a reload may replace it)."""
        return network_animation(self.hub)

    def __call__(self, call_id: str) -> VideoReader | None:
        provider = self.provider
        if provider is None:
            return None
        providers = (provider, *self.retired)
        session = next((s for s in self.hub.sessions() if s.call_id == call_id), None)
        if session is None or session.closed or not wants_network_rendering(session):
            return None
        for other in self.hub.others(session):
            for p in providers:
                source = p.video_source(other.participant.id)
                if source is not None and not source.closed and (source.active or source.produced):
                    return source.reader()
        return None
