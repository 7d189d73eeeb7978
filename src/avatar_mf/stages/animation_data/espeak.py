"""Text to timed phonemes (and speech audio) with espeak-ng, through its C API via ctypes.

libespeak-ng (Debian package ``libespeak-ng1``, which pulls in ``espeak-ng-data``) is driven
in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode with phoneme events enabled (``espeak_Initialize``
option bit 0): ``espeak_Synth`` runs to completion in the calling thread and hands the
synthesized samples and an event list to the synth callback, chunk by chunk. From the events
we keep

* ``espeakEVENT_PHONEME``: the phoneme mnemonic (espeak-ng's ASCII phoneme names, e.g. ``p``,
  ``aI``, ``3:``, ``_:``, in the 8-byte ``id.string`` union member) and ``audio_position``, its
  start in milliseconds from the start of the message;
* ``espeakEVENT_WORD``: start time, character position and length of each word.

The number of samples delivered gives the exact duration (``samples / sample_rate``).

The library keeps all of its state in process globals and is not thread-safe, so there is one
:class:`EspeakEngine` per process (:func:`espeak_engine`), initialised on first use, and every
call into the library holds its lock. Synthesis is CPU work (about 0.001-0.003 x real time):
call it from an executor thread, never on the event loop.

Repeatability. espeak-ng 1.51 (Debian 12) is not history-free: its wave generator keeps state
between messages, so the same text synthesized twice in one process can differ. Measured: the
phoneme starts inside a clause move by at most 1 ms, but the length of a clause-final stop and
of the pause after it varies by 10-50 ms depending on what the process synthesized before (and
the first synthesis after initialisation differs from later ones). The engine therefore keeps a
bounded LRU cache of timelines (text, voice, rate -> :class:`Speech` without audio): within a
process the same request always gets the same timeline, which makes the animation planner,
a pure function of the timeline and its seed, repeatable. Requests for audio bypass the cache.

Text is passed as plain UTF-8 (no ``espeakSSML``, no ``espeakPHONEMES``): markup and
``[[phoneme]]`` sequences in user text are read as text, never interpreted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

#: Longest text accepted, in characters after cleaning (about 2.5 minutes of speech).
MAX_TEXT_CHARS: Final = 2000
#: Timelines kept by :meth:`EspeakEngine.synthesize` for repeatability (a few kB each).
TIMELINE_CACHE_SIZE: Final = 256
#: The Debian packages that provide the library and its data.
DEBIAN_PACKAGES: Final = ("libespeak-ng1", "espeak-ng-data")

_LIBRARY_NAMES: Final = ("espeak-ng", "libespeak-ng.so.1", "libespeak-ng.so")

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_OPTION_PHONEME_EVENTS: Final = 0x01
_CHARS_UTF8: Final = 1
_POS_CHARACTER: Final = 1
_EE_OK: Final = 0
_EVENT_LIST_TERMINATED: Final = 0
_EVENT_WORD: Final = 1
_EVENT_PHONEME: Final = 7
_PARAM_RATE: Final = 1
_RATE_MIN: Final = 80
_RATE_MAX: Final = 450


class SpeechEngineUnavailable(RuntimeError):
    """libespeak-ng (or its data) is not installed or failed to initialise.

    Not retryable: the host needs the Debian packages :data:`DEBIAN_PACKAGES`.
    """


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` (speak_lib.h)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE`` (speak_lib.h), used as a selection spec."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class Speech:
    """One synthesized utterance: phoneme and word timing, duration, optionally the audio."""

    #: ``(start_ms, phoneme)`` in order of time (non-decreasing starts), espeak-ng mnemonics.
    phonemes: tuple[tuple[int, str], ...]
    #: ``(start_ms, text_position, length)`` per word; positions count characters from 1.
    words: tuple[tuple[int, int, int], ...]
    #: Samples per second of the synthesized audio (22050 for espeak-ng's own voices).
    sample_rate: int
    #: Number of mono samples synthesized.
    samples: int
    #: The voice or language spec used.
    voice: str
    #: Signed 16-bit little-endian mono PCM, when asked for; else ``None``.
    audio: bytes | None = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        """Seconds of speech (including espeak-ng's final pause)."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0


_CONTROL_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def clean_text(text: str) -> str:
    """``text`` as espeak-ng gets it: NFC, control/format characters and line breaks turned
    into spaces, whitespace runs collapsed, ends stripped."""
    text = unicodedata.normalize("NFC", text)
    chars = [
        " " if ch.isspace() or unicodedata.category(ch) in _CONTROL_CATEGORIES else ch
        for ch in text
    ]
    return " ".join("".join(chars).split())


def _load_library(name: str | None) -> ctypes.CDLL:
    candidates = [name] if name else [ctypes.util.find_library("espeak-ng"), *_LIBRARY_NAMES[1:]]
    errors: list[str] = []
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError as exc:
            errors.append(str(exc))
    raise SpeechEngineUnavailable(
        "libespeak-ng is not installed (Debian: apt-get install "
        f"{' '.join(DEBIAN_PACKAGES)}): {'; '.join(errors) or 'library not found'}"
    )


class EspeakEngine:
    """The process's espeak-ng instance. Get it with :func:`espeak_engine`.

    All methods are thread-safe (one lock serialises every call into the library).
    """

    def __init__(self, library: str | None = None, data_path: str | None = None) -> None:
        self._lock = threading.Lock()
        lib = _load_library(library)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        path = data_path.encode() if data_path else None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, _OPTION_PHONEME_EVENTS)
        if rate <= 0:
            raise SpeechEngineUnavailable(
                "espeak-ng failed to initialise (is its data installed? Debian: apt-get install "
                f"{' '.join(DEBIAN_PACKAGES)})"
            )
        self._lib = lib
        self.sample_rate: int = rate
        version = lib.espeak_Info(None)
        self.version: str = version.decode() if version else "unknown"
        # Per-call sinks, filled by the callback while the lock is held.
        self._phonemes: list[tuple[int, str]] = []
        self._words: list[tuple[int, int, int]] = []
        self._chunks: list[bytes] | None = None
        self._samples = 0
        self._voice: tuple[str, str] | None = None
        self._cache: OrderedDict[tuple[str, str, str, int], Speech] = OrderedDict()
        # Keep a reference: the library calls it for as long as the process lives.
        self._callback: Any = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._samples += count
            if self._chunks is not None:
                self._chunks.append(ctypes.string_at(wav, count * 2))
        if events:
            i = 0
            while True:
                event = events[i]
                kind = event.type
                if kind == _EVENT_LIST_TERMINATED:
                    break
                if kind == _EVENT_PHONEME:
                    name = bytes(event.id.string).split(b"\0", 1)[0]
                    self._phonemes.append((event.audio_position, name.decode("utf-8", "replace")))
                elif kind == _EVENT_WORD and event.length > 0:
                    self._words.append((event.audio_position, event.text_position, event.length))
                i += 1
        return 0  # 0: continue synthesis

    def _select_voice(self, language: str, voice: str | None) -> str:
        key = ("name", voice) if voice else ("language", language.strip().lower())
        if key == self._voice:
            return key[1]
        if voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"espeak-ng has no voice named {voice!r}")
        else:
            spec = key[1].replace("_", "-")
            if not spec or not spec.isascii():
                raise ValueError(f"bad language tag {language!r}")
            for candidate in dict.fromkeys((spec, spec.split("-", 1)[0])):
                selector = _Voice()
                selector.languages = candidate.encode()
                if self._lib.espeak_SetVoiceByProperties(ctypes.byref(selector)) == _EE_OK:
                    break
            else:
                raise ValueError(f"espeak-ng has no voice for language {language!r}")
        self._voice = key
        return key[1]

    def synthesize(
        self,
        text: str,
        *,
        language: str = "en-us",
        voice: str | None = None,
        words_per_minute: int | None = None,
        audio: bool = False,
    ) -> Speech:
        """Synthesize ``text`` (cleaned with :func:`clean_text`).

        ``voice`` (an espeak-ng voice name or file, e.g. ``en-us`` or ``gmw/en-US``) wins over
        ``language`` (a BCP 47 tag such as ``en-US``; falls back to its primary subtag).
        ``words_per_minute`` is clamped to espeak-ng's 80..450 (default 175).

        Without ``audio`` the result comes from (and goes to) the engine's timeline cache, so
        the same request gets the same timeline for the life of the process (see the module
        docstring); with ``audio`` it is always synthesized afresh.

        Raises ValueError for text over :data:`MAX_TEXT_CHARS` or an unknown voice/language.
        Empty text gives a :class:`Speech` with no phonemes and no samples.
        """
        cleaned = clean_text(text)
        if len(cleaned) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(cleaned)} characters, at most {MAX_TEXT_CHARS}")
        rate = 175 if words_per_minute is None else words_per_minute
        rate = min(max(int(rate), _RATE_MIN), _RATE_MAX)
        key = (cleaned, "name" if voice else "language", voice or language.strip().lower(), rate)
        with self._lock:
            if not audio:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    return cached
            speech = self._synthesize(cleaned, language, voice, rate, audio)
            self._cache[key] = replace(speech, audio=None) if audio else speech
            if len(self._cache) > TIMELINE_CACHE_SIZE:
                self._cache.popitem(last=False)
            return speech

    def _synthesize(
        self, cleaned: str, language: str, voice: str | None, rate: int, audio: bool
    ) -> Speech:
        used = self._select_voice(language, voice)
        if not cleaned:
            return Speech((), (), self.sample_rate, 0, used, b"" if audio else None)
        # Voice selection may reset the rate: set it every time (it is cheap).
        self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self._phonemes = []
        self._words = []
        self._samples = 0
        self._chunks = [] if audio else None
        data = cleaned.encode("utf-8") + b"\0"
        try:
            status = self._lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
            pcm = b"".join(self._chunks) if self._chunks is not None else None
            return Speech(
                tuple(self._phonemes),
                tuple(self._words),
                self.sample_rate,
                self._samples,
                used,
                pcm,
            )
        finally:
            self._phonemes = []
            self._words = []
            self._chunks = None


_ENGINE_LOCK = threading.Lock()
_ENGINE: EspeakEngine | None = None


def espeak_engine(factory: Callable[[], EspeakEngine] = EspeakEngine) -> EspeakEngine:
    """The process's :class:`EspeakEngine`, created on first use.

    libespeak-ng holds its state in C globals, so a second instance would share (and corrupt)
    the first one's: this is the one place that creates it. Raises
    :class:`SpeechEngineUnavailable` when the library is missing (every call, not only the
    first: installing the package makes later calls work).
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = factory()
        return _ENGINE
