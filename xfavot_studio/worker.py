"""The one Engine, on its own QThread. Panels submit jobs; results come back as signals.

    job = worker.submit(lambda engine, job: engine.face_from_voice(faces, wav), "Face from voice")
    job.done.connect(show); job.failed.connect(show_error)

Jobs run one at a time in submission order. A job with a `key` supersedes the still-waiting
jobs with the same key (a dragged slider asks for many mixes; only the latest one runs). A job's
`cancel()` is honoured between items by long jobs that check `job.cancelled`.
A UserError becomes a readable message; any other exception becomes a message too (with the
traceback in the log), so a bug never kills the window or leaves it waiting forever.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

log = logging.getLogger("xfavot_studio")


class Job(QObject):
    done = Signal(object)
    failed = Signal(str)
    progress = Signal(int, int, str)   # done, total, what
    finished = Signal()                # after done/failed, or when skipped as superseded

    def __init__(self, fn, label: str, key: str | None = None, timed: bool = False):
        super().__init__()
        self.fn, self.label, self.key, self.timed = fn, label, key, timed
        self._cancel = threading.Event()
        self.seconds = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, done: int, total: int, what: str = "") -> None:
        """Called by the job function on the worker thread."""
        self.progress.emit(done, total, what)


class _Runner(QObject):
    run = Signal(object)

    def __init__(self, worker: "EngineWorker"):
        super().__init__()
        self.worker = worker
        self.run.connect(self._run)

    @Slot(object)
    def _run(self, job: Job) -> None:
        w = self.worker
        with w._lock:
            w._pending.remove(job)
            w._running = job
        if job.cancelled:
            with w._lock:
                w._running = None
            job.finished.emit()
            return
        from core.errors import UserError

        w.busy.emit(job.label)
        start = time.perf_counter()
        try:
            result = job.fn(w.engine, job)
        except UserError as exc:
            job.failed.emit(str(exc))
        except Exception as exc:  # a bug: say so plainly, keep the app alive, keep the details
            log.error("%s failed:\n%s", job.label, traceback.format_exc())
            job.failed.emit(f"{job.label} failed unexpectedly ({type(exc).__name__}: {exc}). "
                            f"Details are in the log.")
        else:
            job.seconds = time.perf_counter() - start
            job.done.emit(result)
            if job.timed:
                w.timing.emit(job.label, job.seconds)
        finally:
            with w._lock:
                w._running = None
            job.finished.emit()
            w.idle.emit()


class EngineWorker(QObject):
    busy = Signal(str)             # a job started (its label)
    idle = Signal()                # a job ended
    timing = Signal(str, float)    # label, seconds of a finished inference job (submitted timed=True)

    def __init__(self, engine=None):
        super().__init__()
        if engine is None:
            from core.engine import Engine

            engine = Engine()
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: list[Job] = []
        self._running: Job | None = None
        self._thread = QThread()
        self._thread.setObjectName("engine-worker")
        self._runner = _Runner(self)
        self._runner.moveToThread(self._thread)
        self._thread.start()

    def submit(self, fn, label: str, key: str | None = None, timed: bool = False) -> Job:
        """timed: an inference job, whose wall time the status bar shows."""
        job = Job(fn, label, key, timed)
        with self._lock:
            if key is not None:
                for old in self._pending:
                    if old.key == key:
                        old.cancel()
            self._pending.append(job)
        # dispatch from the event loop, after the caller has connected to the job's signals
        # (a job that fails at once would otherwise report before anyone listens)
        QTimer.singleShot(0, self, lambda: self._runner.run.emit(job))
        return job

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._pending)

    def is_idle(self) -> bool:
        """Nothing waiting and nothing running (signals of the last job may still be on their way)."""
        with self._lock:
            return not self._pending and self._running is None

    def shutdown(self, wait_ms: int = 10_000) -> None:
        with self._lock:
            for job in self._pending:
                job.cancel()
        self._thread.quit()
        self._thread.wait(wait_ms)
