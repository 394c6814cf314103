"""Streaming voice conversion: blocks of microphone samples in, converted blocks out.

    stream = StreamingConverter(engine, style, block_ms=100)
    out = stream.process(block)          # len(out) == len(block), 24 kHz float32
    tail = stream.flush()                # the audio still held back (end of a file)

How (after RVC's and w-okada's realtime paths, ../shared/design/live-notes.md):
- Each block is converted together with `context_ms` of the audio before it (left context), so the
  generator's instance norms and the F0 network see a few seconds of speech, and `lookahead_ms` of
  audio after it (right context, optional: it costs its length in latency).
- The window slides by whole blocks, and blocks are multiples of 4 mel hops, so every call sees the
  same frame grid and the same pooling grid in G_A: the same audio gives the same mel frames.
- Only the frames around the new block are vocoded (the vocoder's receptive field is local).
- Transposition (as offline, core/engine.py voice_from_style): G_A's F0 features are read from the
  input moved by whole semitones to the style's register while G_A converts the untouched mel. A
  live speaker's register is unknown at the start, so `auto` listens first: the transposition is
  fixed once SETTLE_VOICED_SECONDS of voiced speech were heard (one that kept moving would bend
  the voice mid-phrase) and is 0 until then. Only the newest audio is pitch-shifted per block
  (with a little left context), kept in a ring beside the input's. Toward a face or a latent
  sample the converted voice is then heard for as long, and the transposition moved once by 4
  semitones toward the style's register if the voice missed it by more than 2 (`_land`; offline
  retries both ways, Engine._land_register).
- Level: input and output are brought to the corpora's loudness (as offline: Engine._speech, and
  the normalised result) by gains that follow the window's loudness while the speaker talks
  (LevelFollower).
- Joins: the new block's start is aligned to the previous block's tail by SOLA (the offset within
  `search_ms` with the highest normalised cross-correlation), then the two overlap for
  `crossfade_ms` with equal-power (sin^2/cos^2) fades, so nothing clicks at the joins.

Latency (algorithmic): a block's output leaves one block after its first sample came in, plus
what is held back after it (lookahead, the next crossfade and the SOLA search, rounded up to the
50 ms grid); `timings()` splits it up. Compute time and the audio device's buffers come on top
(the live audio path measures them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import audio
from .engine import (
    ENVELOPE_MATCH,
    LANDING_RETRIES,
    LANDING_TOLERANCE,
    MAX_TRANSPOSE,
    REGISTER_HOP,
    STYLE_PUSH,
    formant_factor,
    semitones_between,
)

FRAME_GRID = 4 * audio.HOP  # G_A halves time twice: windows slide by multiples of 4 frames (50 ms)


# Torch's OpenMP threads are per calling thread. A live worker thread running two of them next to
# the process's other torch threads measured 105 ms per 100 ms block (p50; 128 p95) on the 2-core
# build machine, the same work on one thread 69 ms (88 p95): on few cores one thread keeps up.
LIVE_WORKER_THREADS = 1


def prepare_worker_thread(threads: int = LIVE_WORKER_THREADS) -> None:
    """Call at the start of the thread that runs StreamingConverter.process (per-thread setting)."""
    torch.set_num_threads(threads)


@dataclass
class StreamTimings:
    block_ms: float       # a block is converted once all of it has arrived
    lookahead_ms: float   # right context the generator sees after the block
    joins_ms: float       # held back for the next crossfade and SOLA search (on the 50 ms grid)

    @property
    def algorithmic_ms(self) -> float:
        return self.block_ms + self.lookahead_ms + self.joins_ms


def round_to_grid(ms: float) -> int:
    """Milliseconds -> samples, rounded up to the 50 ms frame grid (at least one grid step)."""
    samples = int(round(ms * audio.SAMPLE_RATE / 1000))
    return max(FRAME_GRID, -(-samples // FRAME_GRID) * FRAME_GRID)


class LevelFollower:
    """A gain that brings audio to audio.TARGET_LUFS: set by the first loudness it is shown, then
    following it with a time constant of FOLLOW_SECONDS (one step per block)."""
    FOLLOW_SECONDS = 1.0
    MAX_DB = 30.0

    def __init__(self, block: int):
        self.step = min(1.0, block / audio.SAMPLE_RATE / self.FOLLOW_SECONDS)
        self.db: float | None = None

    def follow(self, wav: np.ndarray) -> None:
        level = audio.loudness(wav)
        if not np.isfinite(level):
            return
        want = float(np.clip(audio.TARGET_LUFS - level, -self.MAX_DB, self.MAX_DB))
        self.db = want if self.db is None else self.db + self.step * (want - self.db)

    @property
    def factor(self) -> float:
        return 10 ** ((self.db or 0.0) / 20)


class StreamingConverter:
    VOCODER_CONTEXT_FRAMES = 24  # the Vocos backbone sees +-19 frames; Griffin-Lim is local too
    SETTLE_VOICED_SECONDS = 1.5  # auto transposition: voiced speech heard before it is fixed
    YIN_FRAME = 2048             # core.audio.f0_track's frame: the left context a block's F0 needs
    SHIFT_CONTEXT = 2048         # left context of the newest audio's pitch shift (a phase-vocoder frame)
    QUIET_RMS = 10 ** (-45 / 20)  # blocks below -45 dBFS are not listened to for the register
    EQ_FOLLOW_SECONDS = 1.0       # how fast the envelope equaliser follows the converted speech

    def __init__(self, engine, style, block_ms: float = 100.0, context_ms: float = 2000.0,
                 lookahead_ms: float = 0.0, crossfade_ms: float = 30.0, search_ms: float = 10.0,
                 transpose: int | None = None):
        """transpose: semitones the F0 features move by (0: off), or None for auto: to the style's
        register (Engine.register_of) from the speaker's, measured on the first voiced speech."""
        engine._need_model()
        self.engine = engine
        self.block = round_to_grid(block_ms)
        self.context = round_to_grid(context_ms)
        self.crossfade = int(round(crossfade_ms * audio.SAMPLE_RATE / 1000))
        self.search = int(round(search_ms * audio.SAMPLE_RATE / 1000))
        if self.crossfade + 2 * self.search > self.block:
            raise ValueError("the crossfade plus twice the SOLA search must fit in one block")
        # audio after the emitted block: the next crossfade + SOLA search, and the lookahead
        self.lookahead = 0 if lookahead_ms <= 0 else int(round(lookahead_ms * audio.SAMPLE_RATE / 1000))
        self.holdback = round_to_grid((self.crossfade + self.search + self.lookahead) * 1000 / audio.SAMPLE_RATE)
        self.window = self.context + self.block + self.holdback        # samples converted per call
        self.style = engine._style_tensor([style], 1)
        self.buffer = np.zeros(self.window, np.float32)                # the newest `window` input samples
        self.tail: np.ndarray | None = None                            # last call's audio after what it emitted
        self.fade_in = np.sin(np.linspace(0, np.pi / 2, self.crossfade, dtype=np.float32)) ** 2
        self.fade_out = 1 - self.fade_in
        self.compute_ms: list[float] = []
        self.pending = np.zeros(0, np.float32)                         # input not yet a whole block
        self.target_hz = engine.register_of(style) if transpose is None else None
        self.semitones = 0 if transpose is None else int(np.clip(transpose, -MAX_TRANSPOSE, MAX_TRANSPOSE))
        self.settled = transpose is not None or self.target_hz is None   # False: auto, still listening
        self.heard_f0: list[float] = []                                # voiced F0 (Hz) while listening
        # auto toward a face or a latent sample, as offline (Engine._land_register) but once and one
        # way: the converted voice's register is heard after settling, and the transposition moved
        # toward the style's by the largest of LANDING_RETRIES if it missed by > LANDING_TOLERANCE
        self.landing = transpose is None and self.target_hz is not None and style.f0_hz is None
        self.landed_f0: list[float] = []                               # the output's voiced F0 meanwhile
        self.corrected = 0                                             # semitones the landing moved it by
        # toward a voice, as offline: the style pushed away from the speaker's own (Engine.
        # _pushed_from_source), read from the window once SETTLE_VOICED_SECONDS of speech were heard
        self.reference = style
        self.pushed = not (STYLE_PUSH and style.source == "voice")
        self.shifted = np.zeros(self.window, np.float32)               # `buffer` moved by `semitones`
        # toward a voice: the equaliser onto its envelope (as offline), from the converted window's
        # speech, followed with a time constant of EQ_FOLLOW_SECONDS while the speaker talks
        self.envelope = torch.from_numpy(style.envelope) if style.envelope is not None and ENVELOPE_MATCH else None
        self.gain: torch.Tensor | None = None
        # input and output at the corpora's loudness, as offline (Engine._speech, normalize_loudness)
        self.input_level, self.output_level = LevelFollower(self.block), LevelFollower(self.block)
        self.emitted = np.zeros(self.window, np.float32)               # the newest output, before its gain

    def timings(self) -> StreamTimings:
        """Where the algorithmic latency goes: block + what is held back after it (lookahead,
        crossfade and SOLA search, on the 50 ms frame grid)."""
        rate = audio.SAMPLE_RATE / 1000
        lookahead = self.lookahead / rate
        return StreamTimings(self.block / rate, lookahead, self.holdback / rate - lookahead)

    @property
    def delay_samples(self) -> int:
        """Output sample p (counting everything `process` returned) is input sample p - delay."""
        return self.holdback

    # -- the conversion of one window ------------------------------------------------------------
    @torch.inference_mode()
    def _convert_window(self, wav: np.ndarray) -> np.ndarray:
        """Converted audio of window samples [context - search, context + block + crossfade + search):
        the block to emit, with room for the SOLA shift and the next crossfade."""
        e = self.engine
        gain = self.input_level.factor
        wav = wav * gain
        mel = e._mel(wav)[:, :-1]  # centred frames: T = window / hop (the last half-frame dropped)
        mel = audio.warp_formants(mel, formant_factor(self.semitones), e.cfg.mel_frontend)
        with e._lock:
            x = mel[None, None]
            # float32 STFT for the F0 features alone: 3x faster, and JDC was trained on such crops
            f0_in = audio.log_mel(self.shifted * gain, e.cfg.mel_frontend, precise=False)[:, :-1].to(e.device)[None, None] \
                if self.semitones else x
            y = e.nets["generator_audio"](x, self.style, e.nets["jdc"].get_feature(f0_in))[0, 0]
        y = self._equalise(y)
        start = self.context - self.search
        end = self.context + self.block + self.crossfade + self.search
        f0 = max(0, start // audio.HOP - self.VOCODER_CONTEXT_FRAMES)
        f1 = min(y.shape[-1], -(-end // audio.HOP) + self.VOCODER_CONTEXT_FRAMES)
        voiced = e.vocoder(y[:, f0:f1]).numpy()                  # (f1 - f0) * hop samples from f0 * hop
        return voiced[start - f0 * audio.HOP: end - f0 * audio.HOP]

    def _speaking(self) -> bool:
        """Whether the newest block is louder than QUIET_RMS (what the register and the equaliser follow)."""
        return bool(np.sqrt(np.mean(self.buffer[-self.block:] ** 2)) >= self.QUIET_RMS)

    def _equalise(self, y: torch.Tensor) -> torch.Tensor:
        """The converted window through the envelope equaliser (audio.envelope_gain, as
        Engine.voice_from_style applies it to a whole clip), updated only while the newest block is speech."""
        if self.envelope is None:
            return y
        if self._speaking():
            gain = audio.envelope_gain(y, self.envelope, ENVELOPE_MATCH)
            follow = min(1.0, self.block / audio.SAMPLE_RATE / self.EQ_FOLLOW_SECONDS)
            self.gain = gain if self.gain is None else self.gain + follow * (gain - self.gain)
        return y if self.gain is None else y + self.gain[:, None]

    def _sola_offset(self, new: np.ndarray) -> int:
        """Offset in [0, 2 * search] where `new` best continues the previous tail."""
        if self.tail is None or self.search == 0 or self.crossfade == 0:
            return self.search
        n = self.crossfade
        windows = np.lib.stride_tricks.sliding_window_view(new[:2 * self.search + n], n)  # (2 search + 1, n)
        scores = windows @ self.tail / (np.sqrt(np.einsum("ij,ij->i", windows, windows)) + 1e-8)
        return int(np.argmax(scores))

    # -- transposition ---------------------------------------------------------------------------
    def _listen(self) -> None:
        """Add the newest block's voiced F0 to what was heard; once enough was, fix the auto
        transposition and push the style away from the speaker's own."""
        if (self.settled and self.pushed) or not self._speaking():
            return
        if not self._hear(self.buffer, self.heard_f0):
            return
        if not self.pushed:
            self.style = self.engine._pushed_from_source(self.buffer, self.reference)
            self.pushed = True
        if not self.settled:
            self.semitones = semitones_between(float(np.median(self.heard_f0)), self.target_hz)
            self.settled = True
            if self.semitones:
                self.shifted = audio.pitch_shift(self.buffer, self.semitones)

    def _hear(self, ring: np.ndarray, heard: list[float]) -> bool:
        """Add the voiced F0 (Hz) of the newest block of `ring` to `heard`; whether
        SETTLE_VOICED_SECONDS of voiced speech are in it now."""
        f0, voiced = audio.f0_track(ring[-(self.block + self.YIN_FRAME):], REGISTER_HOP)
        newest = np.arange(f0.size) * REGISTER_HOP >= self.YIN_FRAME  # frames centred in the new block
        heard.extend(f0[voiced & newest].tolist())
        return len(heard) * REGISTER_HOP >= self.SETTLE_VOICED_SECONDS * audio.SAMPLE_RATE

    def _land(self) -> None:
        """After settling: add the newest output block's voiced F0 to what was heard of the converted
        voice; once SETTLE_VOICED_SECONDS were, move the transposition toward the style's register
        if the output missed it (G_A's pitch follows the style more than its F0 features)."""
        if not (self.landing and self.settled) or not self._speaking():
            return
        if not self._hear(self.emitted, self.landed_f0):
            return
        self.landing = False
        miss = 12 * np.log2(float(np.median(self.landed_f0)) / self.target_hz)
        if abs(miss) <= LANDING_TOLERANCE:
            return
        step = max(abs(d) for d in LANDING_RETRIES) * (-1 if miss > 0 else 1)
        moved = int(np.clip(self.semitones + step, -MAX_TRANSPOSE, MAX_TRANSPOSE))
        self.corrected, self.semitones = moved - self.semitones, moved
        if self.corrected:
            self.shifted = audio.pitch_shift(self.buffer, self.semitones)

    def pitch_summary(self) -> str:
        """What the conversion does with the pitch, in words for the Live tab and `xfavot live`."""
        if not self.settled:
            return "Pitch: listening to your voice…"
        if self.target_hz is None and not self.semitones:
            return "Pitch: not moved"
        how = "auto, to the reference's register" if self.target_hz is not None else "fixed"
        if self.corrected:
            how += f"; moved {self.corrected:+d} once the converted voice was heard"
        return f"Pitch: {self.semitones:+d} semitones ({how})"

    def _shift_newest(self) -> None:
        """Slide the shifted ring by a block and redo its newest block + held-back audio (the last
        call shifted that without right context; the holdback, >= 50 ms, covers the phase
        vocoder's 43 ms edge). Untransposed, the ring is not read (auto fills it whole on settling)."""
        if not self.semitones:
            return
        self.shifted = np.concatenate([self.shifted[self.block:], np.zeros(self.block, np.float32)])
        n = self.block + self.holdback
        self.shifted[-n:] = audio.pitch_shift(self.buffer[-(n + self.SHIFT_CONTEXT):], self.semitones)[-n:]

    def _step(self) -> np.ndarray:
        t0 = time.perf_counter()
        self._shift_newest()
        self._listen()
        speaking = self._speaking()
        if speaking:
            self.input_level.follow(self.buffer)
        new = self._convert_window(self.buffer)
        d = self._sola_offset(new)
        self.emitted = np.concatenate([self.emitted[self.block:], new[d:d + self.block]])
        if speaking:
            self.output_level.follow(self.emitted)
        self._land()
        new = new * self.output_level.factor
        out = new[d:d + self.block].copy()
        if self.tail is not None and self.crossfade:
            out[:self.crossfade] = self.tail * self.fade_out + out[:self.crossfade] * self.fade_in
        self.tail = new[d + self.block:d + self.block + self.crossfade].copy()
        self.compute_ms.append((time.perf_counter() - t0) * 1000)
        return out

    # -- public ----------------------------------------------------------------------------------
    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed any number of input samples; returns the converted blocks completed by them
        (a multiple of the block size, possibly empty)."""
        self.pending = np.concatenate([self.pending, np.asarray(samples, np.float32).reshape(-1)])
        outputs = []
        while self.pending.size >= self.block:
            block, self.pending = self.pending[:self.block], self.pending[self.block:]
            self.buffer = np.concatenate([self.buffer[self.block:], block])
            outputs.append(self._step())
        return np.concatenate(outputs) if outputs else np.zeros(0, np.float32)

    def convert(self, wav: np.ndarray) -> np.ndarray:
        """Stream a whole waveform through block by block; returns it time-aligned with the input
        (the algorithmic delay removed), for comparisons with offline conversion and file mode."""
        out = [self.process(wav), self.process(np.zeros(self.holdback + 2 * self.block, np.float32))]
        return np.concatenate(out)[self.delay_samples:self.delay_samples + wav.size]
