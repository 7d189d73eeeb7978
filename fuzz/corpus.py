"""Seed inputs for every fuzz target, made from the repository's own fixtures.

Nothing binary is committed: the seeds are written from the RFC 4475 torture messages
(tests/sip/rfc4475), the SDP fixtures (tests/fixtures/sdp, tests/sdp/fixtures), the metadata
samples (tests/protocol/samples.py), units and avatars built by the product's own encoders
(``encode_unit``, ``build_glb`` and ``write_arf`` of the test tetrahedron in
tests/avatar/samples.py), a few hand-written requests, and the inputs of the crashes fuzzing
found (:data:`REGRESSIONS`, replayed by every run and by tests/fuzz).

``python -m fuzz.corpus DIR`` writes ``DIR/<target>/<seed name>`` for every target.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avatar_mf.avatar import AvatarModel

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

#: Inputs that crashed a target once (target -> name -> bytes); see docs/fuzzing.md.
REGRESSIONS: dict[str, dict[str, bytes]] = {}


def _sdp_fixtures() -> dict[str, bytes]:
    files = sorted((TESTS / "fixtures" / "sdp").glob("*.sdp"))
    files += sorted((TESTS / "sdp" / "fixtures").glob("*.sdp"))
    return {path.name: path.read_bytes() for path in files}


def _sip() -> dict[str, bytes]:
    seeds = {
        path.name: path.read_bytes() for path in sorted((TESTS / "sip" / "rfc4475").glob("*.dat"))
    }
    offer = _sdp_fixtures()["ims-avatar-offer-no-ice.sdp"]
    head = (
        "INVITE sip:avatar@mf.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        'To: "Avatar MF" <sip:avatar@mf.example.com>\r\n'
        "From: <sip:ue1@ims.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@192.0.2.1\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:ue1@192.0.2.1:5060>;+sip.3gpp-avatar\r\n"
        "P-Asserted-Identity: <sip:ue1@ims.example.com>\r\n"
        "Supported: timer, 100rel\r\n"
        "Session-Expires: 1800;refresher=uac\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(offer)}\r\n\r\n"
    )
    seeds["ims-invite"] = head.encode() + offer
    seeds["options"] = (
        b"OPTIONS sip:mf.example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKo1\r\n"
        b"To: <sip:mf.example.com>\r\nFrom: <sip:p-cscf.example.com>;tag=o1\r\n"
        b"Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n\r\n\r\n"
    )
    seeds["response"] = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\n"
        b"To: <sip:a@b>;tag=x\r\nFrom: <sip:c@d>;tag=y\r\nCall-ID: r1\r\nCSeq: 2 BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    return seeds


def _dcmap() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    pattern = re.compile(rb"^a=(dcmap|dcsa|fingerprint):(.*?)\r?$", re.M)
    for name, sdp in _sdp_fixtures().items():
        for number, match in enumerate(pattern.finditer(sdp)):
            seeds[f"{name}-{number}-{match[1].decode()}"] = match[2]
    seeds["dcmap-escapes"] = (
        b'1000 label="a%20b%C3%A9";subprotocol="x%22y";priority=256;ordered=true'
    )
    seeds["dcmap-extension"] = b"1001 label=plain;max-retr=0;vendor-x=1"
    seeds["fingerprint-sha-512"] = b"sha-512 " + b":".join([b"AB"] * 64)
    return seeds


def _http_message(*messages: bytes) -> bytes:
    """The input :func:`fuzz.targets.split_messages` cuts back into ``messages``."""
    body = b"".join(messages)
    cuts, total = [], 0
    for message in messages[:-1]:
        total += len(message)
        cuts.append(min(255, (total * 256 + len(body) - 1) // len(body)))
    return bytes([len(cuts)]) + bytes(cuts) + body


def _http() -> dict[str, bytes]:
    get = b"GET /index.html HTTP/1.1\r\nHost: mf\r\nAccept: text/html\r\n\r\n"
    post = (
        b"POST /avatars/upload?name=a%20b HTTP/1.1\r\nHost: mf\r\n"
        b"Content-Type: model/gltf-binary\r\nContent-Length: 5\r\n\r\nglTF\x02"
    )
    return {
        "get": _http_message(get),
        "get-http10-bare-lf": _http_message(b"GET /a/b/ HTTP/1.0\nUser-Agent: ue\n\n"),
        "post": _http_message(post),
        "pipelined": _http_message(get + post + b"HEAD / HTTP/1.1\r\n\r\n"),
        "split-across-messages": _http_message(post[:30], post[30:70], post[70:]),
        "absolute-form": _http_message(b"GET http://mf.example.com/app/x.js?v=1 HTTP/1.1\r\n\r\n"),
        "options-asterisk": _http_message(b"OPTIONS * HTTP/1.1\r\nHost: mf\r\n\r\n"),
        "chunked": _http_message(
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        "resync": _http_message(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\nab", get),
    }


def _metadata() -> dict[str, bytes]:
    from tests.protocol.samples import SAMPLES

    from avatar_mf.protocol.metadata import dump_message

    seeds = {
        f"{i:02d}-{m.type.rsplit(':', 1)[-1]}": dump_message(m).encode()
        for i, m in enumerate(SAMPLES)
    }
    seeds["not-an-object"] = b'[1, "urn:3gpp:avatar:v1:hello"]'
    return seeds


def _arf_units() -> dict[str, bytes]:
    from avatar_mf.arf.units import (
        BlendshapeUnit,
        ConfigUnit,
        JointUnit,
        LandmarkUnit,
        UnknownUnit,
        encode_unit,
    )

    identity = tuple(float(i % 5 == 0) for i in range(16))
    units = {
        "config": ConfigUnit(0, "arf-face-v1", 1000.0),
        "blendshape-dense": BlendshapeUnit.dense(40, [i / 52 for i in range(52)]),
        "blendshape-confidence": BlendshapeUnit(80, 2, (3, 7), (0.5, 1.0), (0.9, 0.1)),
        "joint": JointUnit(120, 0, (0, 4), (identity, identity)),
        "joint-velocity": JointUnit(160, 1, (2,), (identity,), (identity,)),
        "landmark-2d": LandmarkUnit(200, 0, False, (0, 1), ((0.1, 0.2), (0.3, 0.4))),
        "landmark-3d-all": LandmarkUnit(
            240, 1, True, (5,), ((0.1, 0.2, 0.3),), ((0.0, 0.0, 1.0),), (0.75,)
        ),
        "unknown": UnknownUnit(9, b"future"),
    }
    seeds = {name: encode_unit(unit) for name, unit in units.items()}
    seeds["stream"] = b"".join(seeds.values())
    return seeds


def _transfer_input(flags: int, total: int, chunk: int, *ops: tuple[int, int, int]) -> bytes:
    """The layout :mod:`fuzz.targets.transfer` reads: flags, size, chunk size, operations."""
    head = bytes([flags]) + (total - 1).to_bytes(2, "big") + bytes([chunk - 1])
    return head + b"".join(bytes([k]) + o.to_bytes(2, "big") + bytes([n]) for k, o, n in ops)


def _transfer() -> dict[str, bytes]:
    whole = [(0, offset, 64) for offset in range(0, 300, 64)]
    return {
        "complete": _transfer_input(1, 300, 64, *whole),
        "digest-mismatch": _transfer_input(0, 300, 64, *whole),
        "gap-resume-duplicate": _transfer_input(
            1, 300, 64, (0, 0, 64), (0, 128, 64), (0, 0, 32), (0, 32, 64), *whole
        ),
        "foreign-bad-truncated": _transfer_input(
            1, 100, 50, (2, 0, 50), (3, 0, 50), (4, 0, 0), (0, 0, 50)
        ),
        "too-long-and-overflow": _transfer_input(1, 100, 40, (0, 0, 60), (5, 0, 8)),
        "chunk-too-large-offer": _transfer_input(3, 100, 200, (0, 0, 10)),
        "too-large-offer": _transfer_input(1, 1100, 255, (0, 0, 10)),
        "raw-chunk": b"AVT1" + bytes(4) + bytes(4) + b"data",
    }


def _tiny_model() -> AvatarModel:
    from tests.avatar.samples import tiny_model

    return tiny_model()


def _glb() -> dict[str, bytes]:
    from avatar_mf.avatar import build_glb

    model = _tiny_model()
    return {
        "tiny-sparse": build_glb(model),
        "tiny-dense": build_glb(model, sparse_targets=False),
    }


def _arf_container() -> dict[str, bytes]:
    import io
    import zipfile

    from avatar_mf.avatar import build_glb, write_arf
    from avatar_mf.avatar.container import ARF_MANIFEST, GLB_ENTRY
    from fuzz.targets.arf_container import SEPARATOR

    model = _tiny_model()
    arf = write_arf(model, avatar_id="urn:uuid:00000000-0000-0000-0000-00000000f022", name="tiny")
    with zipfile.ZipFile(io.BytesIO(arf)) as archive:
        manifest = archive.read(ARF_MANIFEST)
        glb = archive.read(GLB_ENTRY)
    return {
        "tiny-arf": arf,
        "tiny-parts": manifest + SEPARATOR + glb,
        "parts-other-glb": manifest + SEPARATOR + build_glb(model, sparse_targets=False),
    }


SEEDS: dict[str, Callable[[], dict[str, bytes]]] = {
    "sip": _sip,
    "sdp": _sdp_fixtures,
    "dcmap": _dcmap,
    "http": _http,
    "metadata": _metadata,
    "arf_units": _arf_units,
    "transfer": _transfer,
    "arf_container": _arf_container,
    "glb": _glb,
}


def seeds(target: str) -> dict[str, bytes]:
    """Every seed of ``target`` by name, the crash regressions included."""
    out = SEEDS[target]()
    for name, data in REGRESSIONS.get(target, {}).items():
        out[f"regression-{name}"] = data
    return out


def write_seeds(target: str, directory: Path) -> int:
    """Write the seeds of ``target`` into ``directory`` (replacing what it held); the count."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    items = seeds(target)
    for name, data in items.items():
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        digest = hashlib.sha1(data).hexdigest()[:8]  # noqa: S324 - a file name, not security
        (directory / f"{safe}-{digest}").write_bytes(data)
    return len(items)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("targets", nargs="*", default=list(SEEDS))
    args = parser.parse_args(argv)
    for target in args.targets:
        count = write_seeds(target, args.directory / target)
        print(f"{target}: {count} seeds")


if __name__ == "__main__":
    main()
