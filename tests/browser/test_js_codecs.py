"""The page's codecs agree with the Python ones on vectors generated here, in this run.

web/src/dcapp/units.js (the ARF unit decoder the data channel application runs) against
avatar_mf.arf.units: every unit kind and flag combination, unknown types, NaN and infinities,
the worked bytes of docs/protocol.md, every malformed framing the Python codec names, and
seeded byte flips and truncations of valid units: the JS result (the decoded fields, or the
error code) must equal what the Python codec makes of the same bytes. Also web/src/dcapp's
SHA-256 against hashlib, its ZIP reader on an ARF container written by avatar_mf.avatar, and
its transfer receiver and upload chunks against avatar_mf.protocol.transfer, and its raw audio
messages (web/src/dcapp/audio.js) against avatar_mf.protocol.audio. Run with node.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from avatar_mf.arf import (
    ArfDecodeError,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    LandmarkUnit,
    UnknownUnit,
    decode_unit,
    encode_unit,
)
from avatar_mf.avatar.container import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.protocol.audio import AUDIO_SAMPLE_RATE, AudioFormat, encode_audio, parse_audio
from avatar_mf.protocol.transfer import TransferSender, transfer_tag

from .conftest import WEB


def _num(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _nums(xs: Any) -> Any:
    return None if xs is None else [_num(x) for x in xs]


def _vecs(xs: Any) -> Any:
    return None if xs is None else [_nums(x) for x in xs]


def python_reading(data: bytes) -> dict[str, Any]:
    """What the Python codec makes of ``data``, in the JSON form vectors.mjs prints."""
    try:
        unit = decode_unit(data)
    except ArfDecodeError as exc:
        return {"error": exc.code}
    if isinstance(unit, ConfigUnit):
        return {
            "type": "CONFIG",
            "timestamp": unit.timestamp,
            "profile": unit.profile,
            "timescale": _num(unit.timescale),
        }
    if isinstance(unit, BlendshapeUnit):
        return {
            "type": "BLENDSHAPE",
            "timestamp": unit.timestamp,
            "set_id": unit.set_id,
            "indices": list(unit.indices),
            "weights": _nums(unit.weights),
            "confidences": _nums(unit.confidences),
        }
    if isinstance(unit, JointUnit):
        return {
            "type": "JOINT",
            "timestamp": unit.timestamp,
            "set_id": unit.joint_set_id,
            "indices": list(unit.indices),
            "matrices": _vecs(unit.matrices),
            "velocities": _vecs(unit.velocities),
        }
    if isinstance(unit, LandmarkUnit):
        return {
            "type": "LANDMARK",
            "timestamp": unit.timestamp,
            "set_id": unit.set_id,
            "is_3d": unit.is_3d,
            "indices": list(unit.indices),
            "coords": _vecs(unit.coords),
            "velocities": _vecs(unit.velocities),
            "confidences": _nums(unit.confidences),
        }
    assert isinstance(unit, UnknownUnit)
    return {"type": "UNKNOWN", "unit_type": unit.unit_type, "payload": unit.payload.hex()}


def valid_units(rng: random.Random) -> list[bytes]:
    def f() -> float:
        return struct.unpack(">f", struct.pack(">f", rng.uniform(-2, 2)))[0]

    matrix = tuple(float(i) for i in range(16))
    units: list[bytes] = [
        encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
        encode_unit(ConfigUnit(2**32 - 1, "ünïcode-profile", 30.0)),
        encode_unit(ConfigUnit(7, "", 1e-3)),
        encode_unit(BlendshapeUnit(33, 0, (24, 8), (0.5, 1.0))),
        encode_unit(BlendshapeUnit.dense(1234, [f() for _ in range(52)])),
        encode_unit(BlendshapeUnit(5, 3, (0, 65535), (f(), f()), (f(), f()))),
        encode_unit(BlendshapeUnit(6, 0, (1, 2, 3), (math.nan, math.inf, -math.inf))),
        encode_unit(JointUnit(40, 0, (0, 3), (matrix, tuple(f() for _ in range(16))))),
        encode_unit(JointUnit(41, 1, (5,), (matrix,), (tuple(f() for _ in range(16)),))),
    ]
    for is_3d in (False, True):
        dims = 3 if is_3d else 2
        for velocity in (False, True):
            for confidence in (False, True):
                count = rng.randint(1, 5)
                units.append(
                    encode_unit(
                        LandmarkUnit(
                            rng.randrange(2**32),
                            rng.randrange(2**16),
                            is_3d,
                            tuple(rng.randrange(2**16) for _ in range(count)),
                            tuple(tuple(f() for _ in range(dims)) for _ in range(count)),
                            tuple(tuple(f() for _ in range(dims)) for _ in range(count))
                            if velocity
                            else None,
                            tuple(f() for _ in range(count)) if confidence else None,
                        )
                    )
                )
    units.append(encode_unit(UnknownUnit(4, b"\x00\x00\x00\x01abc")))
    units.append(encode_unit(UnknownUnit(127, b"")))
    return units


def malformed_units(valid: list[bytes], rng: random.Random) -> list[bytes]:
    worked = bytes.fromhex("02 00000015 00000021 0000 00 0001 0018 3f000000 0008 3f800000")
    config = encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))
    bad: list[bytes] = [
        b"",
        b"\x02\x00\x00",
        worked[:-1],  # truncated
        worked + b"\x00",  # trailing bytes
        worked[:12] + b"\x00\x00" + worked[14:],  # 1 entry declared, 2 present: extra
        b"\x02\x00\x00\x00\x03\x00\x00\x00",  # short BLENDSHAPE head
        b"\x02\x00\x00\x00\x0b" + worked[5:14] + b"\x00\x01",  # short entries
        b"\x00\x00\x00\x00\x02\x00\x00",  # short CONFIG
        config[:9] + b"\xff" + config[10:],  # profile_len past the payload
        config[:10] + b"\xff\xfe" + config[12:],  # not UTF-8
        config[:-4] + struct.pack(">f", 0.0),  # bad timescale
        config[:-4] + struct.pack(">f", math.nan),
        config[:-4] + struct.pack(">f", -1.0),
        b"\x04\x00\x00\x00\x0a" + bytes(10),  # JOINT too short for its entry
        b"\x06\x00\x00\x00\x0b" + bytes(9) + b"\x00\x00",  # LANDMARK too short
    ]
    for _ in range(150):  # seeded byte flips and truncations of valid units
        data = bytearray(rng.choice(valid))
        if rng.random() < 0.5 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:
            data = data[: rng.randrange(len(data) + 1)]
        bad.append(bytes(data))
    return [worked, *bad]


def test_js_codecs_agree_with_python(node: str, web_modules: Path, tmp_path: Path) -> None:
    rng = random.Random(2610)
    valid = valid_units(rng)
    units = valid + malformed_units(valid, rng)
    digests = [b"", b"abc", bytes(range(256)) * 3, bytes(55), bytes(56), bytes(64), bytes(119)]
    digests.append(rng.randbytes(100_000))
    container = write_arf(generate_default_head(resolution="low"), avatar_id="urn:x:js", name="js")
    (tmp_path / "avatar.arf").write_bytes(container)
    payload = rng.randbytes(5000)
    sender = TransferSender(
        payload, transfer_id="tx-42", max_message_size=1024, avatar_id="a", stream_id=1000
    )
    offer = sender.offer(message_id="mf-1").model_dump(by_alias=True, exclude_none=True)
    chunks = list(sender.chunks())
    # In order, then a duplicate; a gap (answered once), and the rest.
    fed = [chunks[0], chunks[0], chunks[2], chunks[2], *chunks[1:]]
    vectors = {
        "units": [u.hex() for u in units],
        "sha256": [d.hex() for d in digests],
        "zip": {"path": str(tmp_path / "avatar.arf"), "entries": ["arf.json", "data/avatar.glb"]},
        "transfer": {"offer": offer, "chunks": [c.hex() for c in fed], "upload": payload.hex()},
    }
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(vectors))
    result = subprocess.run(
        [node, str(WEB / "test" / "vectors.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout)

    expected = [python_reading(u) for u in units]
    assert len(js["units"]) == len(expected)
    for data, mine, theirs in zip(units, expected, js["units"], strict=True):
        assert theirs == mine, data.hex()
    # The vectors cover every outcome the codec has.
    kinds = {e.get("type", e.get("error")) for e in expected}
    assert {"CONFIG", "BLENDSHAPE", "JOINT", "LANDMARK", "UNKNOWN"} <= kinds
    assert {"truncated", "trailing-bytes", "short-payload", "extra-payload"} <= kinds
    assert {"bad-profile", "bad-timescale"} <= kinds

    assert js["sha256"] == [hashlib.sha256(d).hexdigest() for d in digests]

    import zipfile

    with zipfile.ZipFile(tmp_path / "avatar.arf") as archive:
        assert js["zip"] == {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in ("arf.json", "data/avatar.glb")
        }

    assert js["transfer_tag"] == transfer_tag("tx-42").hex()
    kinds_seen = [event["kind"] for event in js["transfer"]]
    assert kinds_seen[:4] == ["stored", "duplicate", "gap", "ignored"]
    assert kinds_seen[-1] == "complete" and js["transfer"][-1]["sha256"] == sender.sha256
    assert js["upload"] == [c.hex() for c in chunks]


def _tone_amplitude(samples: list[float], frequency: float, rate: int = AUDIO_SAMPLE_RATE) -> float:
    """The amplitude of ``frequency`` in ``samples`` (the first 1000, the filter's start, and
    the last 100 left out)."""
    y = np.asarray(samples[1000:-100], dtype=np.float64)
    t = np.arange(1000, 1000 + y.size) / rate
    s = float(np.dot(y, np.sin(2 * np.pi * frequency * t)))
    c = float(np.dot(y, np.cos(2 * np.pi * frequency * t)))
    return 2 * math.hypot(s, c) / y.size


def test_js_audio_messages_agree_with_python(node: str, web_modules: Path, tmp_path: Path) -> None:
    """src/dcapp/audio.js (the page's voice on the avatar-mf-audio channel) against
    avatar_mf.protocol.audio: the same bytes for the same samples, sequence and timestamp
    (wrapping, both formats, the shortest and longest message), the same refusals; the
    packetizer's 20 ms messages from uneven pieces of float samples (clipped, rounded as
    Math.round does) on one clock from its random start; the resampler's 16 kHz output keeps
    the voice band and does not fold what lies above 8 kHz back into it (sample dropping
    would: a 11 kHz tone taken every third sample at 48 kHz is a 5 kHz tone at full
    amplitude)."""
    rng = random.Random(2611)

    def samples(n: int) -> list[int]:
        return [rng.randint(-32768, 32767) for _ in range(n)]

    messages: list[dict[str, Any]] = [
        {"sequence": 7, "timestamp": 320, "samples": [258] * 320, "format": 1},  # the worked bytes
        {"sequence": 7, "timestamp": 320, "samples": [258] * 320, "format": 2},
        {"sequence": 65535, "timestamp": 2**32 - 1, "samples": samples(160), "format": 1},
        {"sequence": 65536 + 5, "timestamp": 2**32 + 7, "samples": samples(960), "format": 2},
        {"sequence": 0, "timestamp": 0, "samples": [-32768, 32767, -1, 0] * 80, "format": 1},
        {"sequence": 1, "timestamp": 1, "samples": samples(159), "format": 1},
        {"sequence": 1, "timestamp": 1, "samples": samples(961), "format": 1},
        {"sequence": 1, "timestamp": 1, "samples": samples(320), "format": 3},
    ]
    floats = [rng.uniform(-1.2, 1.2) for _ in range(3 * 320 + 100)]
    pieces: list[int] = []
    while sum(pieces) < len(floats):
        pieces.append(min(rng.randint(1, 400), len(floats) - sum(pieces)))
    draws = [0.25, 0.9999999]
    tones = [
        {"rate": rate, "frequency": f, "seconds": 1.0}
        for rate in (48000, 44100)
        for f in (1000, 4000, 11000, 14000)
    ]
    vectors = {
        "audio": {
            "messages": messages,
            "packetizer": {
                "frameSamples": 320,
                "random": draws,
                "floats": floats,
                "pieces": pieces,
            },
            "resample": tones,
        }
    }
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps(vectors))
    result = subprocess.run(
        [node, str(WEB / "test" / "vectors.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout)["audio"]

    for spec, theirs in zip(messages, js["messages"], strict=True):
        pcm = struct.pack(f"<{len(spec['samples'])}h", *spec["samples"])
        try:
            mine: Any = encode_audio(
                spec["sequence"], spec["timestamp"], pcm, AudioFormat(spec["format"])
            ).hex()
        except ValueError:
            mine = {"error": "RangeError"}
        assert theirs == mine, spec
        if isinstance(mine, str):
            parsed = parse_audio(bytes.fromhex(theirs))
            assert parsed.pcm == pcm and parsed.sequence == spec["sequence"] % 2**16
    assert js["messages"][0].startswith("0101000700000140" + "0201")  # docs/protocol.md
    assert js["messages"][1].startswith("0102000700000140" + "0102")

    first_sequence, first_timestamp = int(draws[0] * 2**16), int(draws[1] * 2**32)
    ints = np.clip(np.floor(np.asarray(floats) * 32767 + 0.5), -32768, 32767).astype("<i2")
    expected = [
        encode_audio(
            first_sequence + i, first_timestamp + 320 * i, ints[320 * i : 320 * (i + 1)].tobytes()
        ).hex()
        for i in range(3)
    ]
    assert js["packetized"] == expected
    assert [parse_audio(bytes.fromhex(m)).timestamp for m in js["packetized"]] == [
        (first_timestamp + 320 * i) % 2**32 for i in range(3)
    ]

    for tone, out in zip(tones, js["resampled"], strict=True):
        assert abs(len(out) - AUDIO_SAMPLE_RATE) < 40, len(out)  # 1 s at 16 kHz
        f = tone["frequency"]
        if f < AUDIO_SAMPLE_RATE / 2:  # the voice band passes (amplitude 0.5 in)
            assert abs(_tone_amplitude(out, f) - 0.5) < 0.005, tone
        else:  # above 8 kHz: removed, not folded to 16 kHz - f
            alias = abs(f - AUDIO_SAMPLE_RATE * round(f / AUDIO_SAMPLE_RATE))
            assert _tone_amplitude(out, alias) < 0.5e-3, tone
