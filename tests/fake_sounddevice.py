"""A stand-in for the `sounddevice` module on machines without sound hardware: one microphone that
"hears" a given signal at its own sample rate, one output that records what it was asked to play.

    fake = FakeSoundDevice(signal, rate=48000)
    monkeypatch.setitem(audio_io._state, "module", fake)

InputStream drives its callback from a thread in blocks, at `speed` x real time, like PortAudio.
"""
from __future__ import annotations

import threading
import time

import numpy as np


class FakeSoundDevice:
    def __init__(self, signal: np.ndarray, rate: int = 48000, block: int = 480, speed: float = 4.0):
        self.signal, self.rate, self.block, self.speed = np.asarray(signal, np.float32), rate, block, speed
        self.played: list[tuple[np.ndarray, int, object]] = []
        self.stopped = 0
        self.streams: list[InputStream] = []

    # -- sounddevice's API, as far as the app uses it --------------------------------------------
    def query_devices(self, device=None, kind=None):
        devices = [
            {"name": "Fake microphone", "max_input_channels": 1, "max_output_channels": 0,
             "default_samplerate": float(self.rate)},
            {"name": "Fake speakers", "max_input_channels": 0, "max_output_channels": 2,
             "default_samplerate": 48000.0},
        ]
        if device is None and kind is None:
            return devices
        return devices[0 if kind == "input" else 1] if device is None else devices[device]

    def InputStream(self, device=None, channels=1, samplerate=None, dtype="float32", callback=None, **kwargs):  # noqa: N802
        stream = InputStream(self, samplerate or self.rate, callback)
        self.streams.append(stream)
        return stream

    def play(self, samples, rate, device=None):
        self.played.append((np.asarray(samples), rate, device))

    def stop(self):
        self.stopped += 1


class InputStream:
    def __init__(self, fake: FakeSoundDevice, rate: float, callback):
        self.fake, self.rate, self.callback = fake, rate, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.closed = False

    def start(self):
        self._thread.start()

    def _run(self):
        sig, n = self.fake.signal, self.fake.block
        for start in range(0, len(sig), n):
            if self._stop.is_set():
                return
            block = sig[start:start + n]
            self.callback(block[:, None].copy(), len(block), None, None)
            time.sleep(n / self.rate / self.fake.speed)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def close(self):
        self.closed = True
