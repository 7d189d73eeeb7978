"""The README's "Your first avatar call", run as written against a real MF subprocess.

The shell blocks of that section are joined into one script and run with bash; only the MF's
address (a free port instead of 5060), the program (``python -m avatar_mf`` of this checkout
instead of ``.venv/bin/avatar-mf``) and the avatar store (the node's) differ; the MF runs with
the network animation stage, as the section tells the reader to restart it. The test then
looks where the README says to look, the videos of step 5 included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av

from avatar_mf.testing.process import MfProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def first_call_script() -> str:
    text = README.read_text()
    section = text.split("## Your first avatar call", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 4, "the section's four shell blocks"
    return "\n".join(re.sub(r"^ {3}", "", b, flags=re.MULTILINE) for b in blocks)


def test_readme_first_avatar_call(tmp_path: Path) -> None:
    script = first_call_script()
    mf = MfProcess.start(
        tmp_path / "mf",
        settings={"MEDIA__SETUP_TIMEOUT": "20", "PIPELINE__ANIMATION__NAME": "network"},
    )
    try:
        script = script.replace("127.0.0.1:5060", f"127.0.0.1:{mf.sip_port}")
        script = script.replace(".venv/bin/avatar-mf", f"{sys.executable} -m avatar_mf")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
        env["AVATAR_MF_STORAGE__PATH"] = mf.env["STORAGE__PATH"]
        home = tmp_path / "clone"
        home.mkdir()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        mf.stop()
    avatar_id = result.stdout.splitlines()[0].strip()  # step 1's echo
    ue2 = home / "out" / "ue2"
    glb = ue2 / "avatars" / f"{avatar_id}.glb"
    assert glb.read_bytes()[:4] == b"glTF"
    assert (ue2 / "avatars" / f"{avatar_id}.arf").exists()
    kinds = {json.loads(line)["type"] for line in (ue2 / "animation.jsonl").read_text().split()}
    assert {"CONFIG", "BLENDSHAPE"} <= kinds, "UE 2 received no animation"
    summary = json.loads((home / "out-ue2.json").read_text().splitlines()[-1])
    [transfer] = summary["avatar"]["transfers"]
    assert (transfer["avatar_id"], transfer["state"]) == (avatar_id, "complete")
    # The node wrote a call-detail record for each UE's call (to its log: no cdr_file).
    records = [
        json.loads(line)["cdr"] for line in mf.log_text().splitlines()
        if line.startswith("{") and '"avatar_mf.cdr"' in line
    ]  # fmt: skip
    assert sorted(r["from"] for r in records) == ["sip:ue1@127.0.0.1", "sip:ue2@127.0.0.1"]
    assert {r["room"] for r in records} == {"demo"}
    assert all(r["end_reason"] == "bye" for r in records)
    # Step 5: the MF's rendering as UE 2 received it, and the recorded units rendered again.
    for video in (ue2 / "video.mp4", home / "out" / "ue2-units.mp4"):
        assert _video_frames(video) > 25, f"{video.name}: no video"


def _video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
