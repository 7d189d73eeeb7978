"""SDP to media parameters and back: the media layer's view of a data channel m-line.

Pure adapters between :mod:`avatar_mf.sdp` (what the offer and answer say) and
:mod:`avatar_mf.media.params` (what the endpoint needs), shared by the MF's call media and the
test UE.
"""

from __future__ import annotations

from avatar_mf.media.params import LocalParams, RemoteIce, RemoteParams, StreamSpec
from avatar_mf.sdp.datachannel import DataChannelOffer, DcMap, Fingerprint, IceParams
from avatar_mf.sdp.offer_answer import DataChannelAnswerParams


def remote_params(offer: DataChannelOffer) -> RemoteParams:
    """The media layer's view of an offered data channel m-line."""
    ice = None
    if offer.ice is not None:
        ice = RemoteIce(
            ufrag=offer.ice.ufrag,
            pwd=offer.ice.pwd,
            candidates=offer.ice.candidates,
            ice_lite=offer.ice.ice_lite,
        )
    return RemoteParams(
        address=offer.remote_address,
        port=offer.remote_port,
        setup=offer.setup if offer.setup != "holdconn" else "actpass",
        fingerprints=tuple((f.hash_func, f.value.hex(":").upper()) for f in offer.fingerprints),
        sctp_port=offer.sctp_port,
        max_message_size=offer.max_message_size,
        ice=ice,
        tls_id=offer.tls_id,
    )


def stream_spec(dcmap: DcMap) -> StreamSpec:
    return StreamSpec(
        stream_id=dcmap.stream_id,
        label=dcmap.label or "",
        subprotocol=dcmap.subprotocol or "",
        ordered=dcmap.ordered,
        max_retr=dcmap.max_retr,
        max_time=dcmap.max_time,
        priority=dcmap.priority,
    )


def answer_params(local: LocalParams) -> DataChannelAnswerParams:
    """The SDP layer's view of the local data channel endpoint."""
    ice = None
    if local.ice is not None:
        ice = IceParams(
            ufrag=local.ice.ufrag,
            pwd=local.ice.pwd,
            candidates=local.ice.candidates,
            ice_lite=local.ice.ice_lite,
        )
    return DataChannelAnswerParams(
        port=local.port,
        fingerprints=tuple(
            Fingerprint(name, bytes.fromhex(value.replace(":", "")))
            for name, value in local.fingerprints
        ),
        tls_id=local.tls_id,
        sctp_port=local.sctp_port,
        max_message_size=local.max_message_size,
        ice=ice,
    )
