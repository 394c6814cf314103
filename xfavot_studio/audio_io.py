"""Microphone and speakers through sounddevice (PortAudio), with a clear reason when there are none.

A machine without audio hardware (a CI box, a remote desktop) still runs the app: recording and
playback controls are disabled with `unavailable_reason()` as their tooltip, and files work.
"""
from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

_state: dict = {}


def _sd():
    """The sounddevice module, or None with the reason kept for tooltips."""
    if "module" not in _state:
        try:
            import sounddevice

            _state["module"], _state["reason"] = sounddevice, ""
        except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
            _state["module"], _state["reason"] = None, f"sound is unavailable: PortAudio could not be loaded ({exc})"
    return _state["module"]


def devices(kind: str) -> list[tuple[int, str]]:
    """(index, name) of the input ("input") or output ("output") devices; [] when none."""
    sd = _sd()
    if sd is None:
        return []
    try:
        found = sd.query_devices()
    except Exception:  # PortAudio errors differ by host API; no list means no devices
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    return [(i, d["name"]) for i, d in enumerate(found) if d[key] > 0]


def unavailable_reason(kind: str) -> str:
    """'' when recording ("input") / playback ("output") can work, else why not, for a tooltip."""
    if _sd() is None:
        return _state["reason"]
    if not devices(kind):
        return ("No microphone was found on this computer; load a voice file instead." if kind == "input"
                else "No audio output device was found on this computer; save the result and play it elsewhere.")
    return ""


class Recorder(QObject):
    """Records mono audio from an input device until stop() or max_seconds; emits level while it runs."""
    level = Signal(float)              # 0..1 peak of the last block
    finished = Signal(object, int)     # samples (float32), rate
    failed = Signal(str)

    def __init__(self):
        super().__init__()
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._stream = None
        self._peak = 0.0
        self._max_frames = 0
        self._rate = 0
        self._meter = QTimer(self)
        self._meter.setInterval(50)
        self._meter.timeout.connect(self._tick)

    @property
    def recording(self) -> bool:
        return self._stream is not None

    def start(self, device: int | None, max_seconds: float) -> None:
        sd = _sd()
        if sd is None:
            self.failed.emit(_state["reason"])
            return
        try:
            info = sd.query_devices(device, "input")
            self._rate = int(info["default_samplerate"])
            self._blocks, self._peak = [], 0.0
            self._max_frames = int(max_seconds * self._rate)
            self._stream = sd.InputStream(device=device, channels=1, samplerate=self._rate, dtype="float32",
                                          callback=self._callback)
            self._stream.start()
        except Exception as exc:
            self._stream = None
            self.failed.emit(f"cannot record from this device: {exc}")
            return
        self._meter.start()

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread
        with self._lock:
            self._blocks.append(indata[:, 0].copy())
            self._peak = max(self._peak, float(np.abs(indata).max(initial=0.0)))

    def _tick(self) -> None:
        with self._lock:
            peak, self._peak = self._peak, 0.0
            frames = sum(b.size for b in self._blocks)
        self.level.emit(min(1.0, peak))
        if frames >= self._max_frames:
            self.stop()

    def stop(self) -> None:
        if self._stream is None:
            return
        self._meter.stop()
        try:
            self._stream.stop()
            self._stream.close()
        finally:
            self._stream = None
        with self._lock:
            samples = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
        self.finished.emit(samples[: self._max_frames], self._rate)


def play(samples: np.ndarray, rate: int, device: int | None = None) -> str:
    """Starts playback (non-blocking); returns '' or a reason it could not start."""
    sd = _sd()
    if sd is None:
        return _state["reason"]
    try:
        sd.play(np.asarray(samples, dtype=np.float32), rate, device=device)
    except Exception as exc:
        return f"cannot play on this device: {exc}"
    return ""


def stop_playback() -> None:
    sd = _sd()
    if sd is not None:
        try:
            sd.stop()
        except Exception:
            pass
