"""Live voice: microphone -> StreamingConverter (core/streaming.py) -> speakers or a virtual cable.

No Qt here: the app's Live tab and `xfavot live` both drive a LiveSession.

- The audio callback (PortAudio's real-time thread) only copies samples: input into one ring
  buffer, output out of another, and keeps the level meters. No allocation, no locks held long,
  no model.
- A worker thread takes whole blocks from the input ring, resamples them to 24 kHz, converts
  them (or passes them through when bypassed) and puts the result, resampled back to the
  device rate, in the output ring.
- When the worker falls behind, the oldest input is dropped (counted as dropped blocks) instead
  of queueing: latency never creeps up over a session. When output piles up (a device that
  drains slower than it fills) the oldest output is dropped the same way.
- A device that fails or disappears mid-stream ends the session with a message; the caller
  decides what to show.

`FileStream` is a stand-in for sounddevice's duplex Stream that plays a file through the same
callback at real-time pace and records what comes out: `xfavot live --input-file` and the tests
use it, so the whole path runs on machines without a sound card.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from core import audio
from core.streaming import StreamingConverter, prepare_worker_thread


class RingBuffer:
    """Single-producer single-consumer float32 ring with drop-oldest overflow."""

    def __init__(self, capacity: int):
        self.data = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self.start = 0
        self.size = 0
        self.lock = threading.Lock()

    def write(self, samples: np.ndarray) -> int:
        """Append; returns how many old samples were dropped to make room."""
        n = samples.size
        with self.lock:
            if n >= self.capacity:
                samples, n = samples[-self.capacity:], self.capacity
            dropped = max(0, self.size + n - self.capacity)
            if dropped:
                self.start = (self.start + dropped) % self.capacity
                self.size -= dropped
            end = (self.start + self.size) % self.capacity
            first = min(n, self.capacity - end)
            self.data[end:end + first] = samples[:first]
            self.data[:n - first] = samples[first:]
            self.size += n
            return dropped

    def read(self, n: int, out: np.ndarray | None = None) -> int:
        """Move up to n samples into out[:k]; returns k."""
        with self.lock:
            k = min(n, self.size)
            first = min(k, self.capacity - self.start)
            if out is not None:
                out[:first] = self.data[self.start:self.start + first]
                out[first:k] = self.data[:k - first]
            self.start = (self.start + k) % self.capacity
            self.size -= k
            return k

    def discard_to(self, keep: int) -> int:
        """Drop the oldest samples so that at most `keep` remain; returns how many were dropped."""
        with self.lock:
            drop = max(0, self.size - keep)
            self.start = (self.start + drop) % self.capacity
            self.size -= drop
            return drop


@dataclass
class LiveStats:
    blocks: int = 0
    dropped_blocks: int = 0
    underruns: int = 0          # output callbacks that found too little converted audio
    input_level: float = 0.0    # peak of the last callback, 0..1
    output_level: float = 0.0
    compute_ms: list = field(default_factory=list)
    device_latency_ms: float = 0.0
    algorithmic_ms: float = 0.0
    block_ms: float = 0.0
    lookahead_ms: float = 0.0
    joins_ms: float = 0.0
    error: str = ""

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.compute_ms[-500:], q)) if self.compute_ms else 0.0

    @property
    def end_to_end_ms(self) -> float:
        """Algorithmic + compute (p95) + what the audio device adds in and out."""
        return self.algorithmic_ms + self.percentile(95) + self.device_latency_ms

    def summary(self) -> str:
        return (f"latency {self.end_to_end_ms:.0f} ms = block {self.block_ms:.0f} + lookahead {self.lookahead_ms:.0f} "
                f"+ joins {self.joins_ms:.0f} + compute p95 {self.percentile(95):.0f} (p50 {self.percentile(50):.0f}) "
                f"+ device {self.device_latency_ms:.0f}; dropped blocks {self.dropped_blocks}, underruns {self.underruns}")


class LiveSession:
    """One live conversion: a duplex audio stream, two rings, one worker."""

    MAX_BACKLOG_BLOCKS = 2  # input waiting beyond this is stale: dropped

    def __init__(self, converter: StreamingConverter, input_device=None, output_device=None,
                 device_rate: int | None = None, stream_factory=None, on_error=None):
        self.converter = converter
        self.input_device, self.output_device = input_device, output_device
        self.stream_factory = stream_factory or _sounddevice_stream
        self.on_error = on_error
        self.rate = int(device_rate or _default_rate(input_device))
        self.block_device = int(round(converter.block * self.rate / audio.SAMPLE_RATE))
        self.inbox = RingBuffer(self.block_device * 8)
        self.outbox = RingBuffer(self.block_device * 8)
        self.monitor = True     # False: the output stays silent (e.g. while setting levels)
        self.bypass = False     # True: the input is passed through unconverted (compare, or a pause)
        timings = converter.timings()
        self.stats = LiveStats(algorithmic_ms=timings.algorithmic_ms, block_ms=timings.block_ms,
                               lookahead_ms=timings.lookahead_ms, joins_ms=timings.joins_ms)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self.stream = None
        self._started_output = False

    # -- the real-time callback ---------------------------------------------------------------
    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        mono = indata[:, 0] if indata.ndim == 2 else indata
        self.inbox.write(mono)
        self.stats.input_level = float(np.abs(mono).max(initial=0.0))
        self._wake.set()
        out = outdata[:, 0] if outdata.ndim == 2 else outdata
        # wait for one block of converted audio before starting, then play continuously
        if not self._started_output and self.outbox.size < frames:
            out[:] = 0
        else:
            self._started_output = True
            got = self.outbox.read(frames, out)
            if got < frames:
                out[got:] = 0
                self.stats.underruns += 1
        if not self.monitor:
            out[:] = 0
        if outdata.ndim == 2 and outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        self.stats.output_level = float(np.abs(out).max(initial=0.0))

    # -- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        block = np.zeros(self.block_device, np.float32)
        prepare_worker_thread()
        try:
            while not self._stop.is_set():
                if self.inbox.size < self.block_device:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                stale = self.inbox.discard_to(self.block_device * self.MAX_BACKLOG_BLOCKS)
                self.stats.dropped_blocks += -(-stale // self.block_device) if stale else 0
                self.inbox.read(self.block_device, block)
                if self.bypass:
                    converted = block.copy()
                    self.converter.process(self._to_model_rate(block))  # keep its context current
                else:
                    converted = self._to_device_rate(self.converter.process(self._to_model_rate(block)))
                    self.stats.compute_ms = self.converter.compute_ms
                self.stats.blocks += 1
                self.outbox.write(converted)
                self.outbox.discard_to(self.block_device * (self.MAX_BACKLOG_BLOCKS + 1))
        except Exception as exc:  # the model or the device failed: stop cleanly, say why
            self._fail(f"live conversion stopped: {type(exc).__name__}: {exc}")

    def _to_model_rate(self, x: np.ndarray) -> np.ndarray:
        return x.copy() if self.rate == audio.SAMPLE_RATE else audio.resample(x, self.rate, audio.SAMPLE_RATE)

    def _to_device_rate(self, y: np.ndarray) -> np.ndarray:
        if self.rate == audio.SAMPLE_RATE or y.size == 0:
            return y
        out = audio.resample(y, audio.SAMPLE_RATE, self.rate)
        want = int(round(y.size * self.rate / audio.SAMPLE_RATE))
        return np.pad(out, (0, max(0, want - out.size)))[:want]

    def _fail(self, message: str) -> None:
        self.stats.error = message
        self._stop.set()
        if self.on_error:
            self.on_error(message)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="live-convert", daemon=True)
        self._worker.start()
        try:
            self.stream = self.stream_factory(self.input_device, self.output_device, self.rate, self.block_device,
                                              self._callback, self._stream_finished)
            self.stream.start()
        except Exception as exc:
            self._stop.set()
            raise RuntimeError(f"cannot open the audio devices: {exc}") from exc
        latency = getattr(self.stream, "latency", 0.0)
        latency = sum(latency) if isinstance(latency, (tuple, list)) else float(latency or 0.0)
        self.stats.device_latency_ms = 1000 * latency + 1000 * self.block_device / self.rate

    def _stream_finished(self) -> None:
        """PortAudio ended the stream: fine when we asked, a device failure when we did not."""
        if not self._stop.is_set():
            self._fail("the audio device stopped or was disconnected; live conversion ended")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:
                pass
            self.stream = None
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    @property
    def running(self) -> bool:
        return not self._stop.is_set() and self.stream is not None


def _default_rate(device) -> int:
    try:
        import sounddevice as sd

        return int(sd.query_devices(device, "input")["default_samplerate"])
    except Exception:
        return audio.SAMPLE_RATE


def _sounddevice_stream(input_device, output_device, rate, blocksize, callback, finished):
    import sounddevice as sd

    return sd.Stream(device=(input_device, output_device), samplerate=rate, blocksize=blocksize, channels=1,
                     dtype="float32", latency="low", callback=callback, finished_callback=finished)


class FileStream:
    """Plays `samples` through a duplex callback at real-time pace (`speed` > 1: faster) and keeps
    what the callback writes. Stands in for sounddevice.Stream in file mode and tests."""

    def __init__(self, samples: np.ndarray, rate: int, blocksize: int, callback, finished=None, speed: float = 1.0,
                 fail_after_s: float | None = None):
        self.samples, self.rate, self.blocksize = np.asarray(samples, np.float32), rate, blocksize
        self.callback, self.finished, self.speed = callback, finished, speed
        self.fail_after_s = fail_after_s
        self.latency = 0.0
        self.output: list[np.ndarray] = []
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="file-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = self.blocksize / self.rate / self.speed
        t0 = time.perf_counter()
        position, n = 0, 0
        while position < self.samples.size and not self._stop.is_set():
            if self.fail_after_s is not None and position / self.rate >= self.fail_after_s:
                break  # a device that vanished: the stream ends without being asked to
            chunk = self.samples[position:position + self.blocksize]
            indata = np.zeros((self.blocksize, 1), np.float32)
            indata[:chunk.size, 0] = chunk
            outdata = np.zeros((self.blocksize, 1), np.float32)
            self.callback(indata, outdata, self.blocksize, None, None)
            self.output.append(outdata[:, 0].copy())
            position += self.blocksize
            n += 1
            delay = t0 + n * period - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
        self.done.set()
        if self.finished:
            self.finished()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def close(self) -> None:
        pass

    def recorded(self) -> np.ndarray:
        return np.concatenate(self.output) if self.output else np.zeros(0, np.float32)


def run_file(converter: StreamingConverter, samples: np.ndarray, rate: int = audio.SAMPLE_RATE,
             speed: float = 1.0, tail_s: float = 1.0) -> tuple[np.ndarray, LiveStats]:
    """The live path on a file: real-time pace (speed 1), device rate `rate`. Returns what the
    output device would have played (as long as the input plus `tail_s`) and the stats."""
    padded = np.concatenate([samples, np.zeros(int(tail_s * rate), np.float32)])
    holder: dict = {}

    def factory(inp, out, device_rate, blocksize, callback, finished):
        holder["stream"] = FileStream(padded, device_rate, blocksize, callback, finished, speed)
        return holder["stream"]

    session = LiveSession(converter, device_rate=rate, stream_factory=factory)
    session.start()
    holder["stream"].done.wait()
    session.stop()
    if session.stats.error.startswith("the audio device stopped"):
        session.stats.error = ""  # the file ended: that is how a file stream finishes
    return holder["stream"].recorded(), session.stats
