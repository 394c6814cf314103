"""Training tab: fine-tune a model on the user's avatar set (JoJoGAN-style), with live curves.

Training runs on its own QThread through the Trainer API (training.finetune.run_finetune ->
Trainer.run with progress/sample callbacks, set_paused, request_stop). Each run lives in
<app data>/runs/<name>/ with checkpoints every few dozen steps, so a closed window (the app asks
first and saves a checkpoint) or a crash loses little: the run is offered for resuming next time.
A finished run's model is added to the library.
"""
from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.config import DEVICE_CHOICES
from training.rundir import RunDir

from .context import AppContext
from .export_panel import FolderField
from .library import ModelLibrary
from .widgets import ImageView

log = logging.getLogger("xfavot_studio")
PLOTTED = ("G/total", "G/img_adv", "D/img_adv", "G/img_sty", "G/img_cyc", "G/img_ds")
COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1")
RUN_FILE = "studio.json"


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def unfinished_runs(runs_dir: Path) -> list[dict]:
    """Runs the app started that neither finished nor were abandoned (newest first)."""
    found = []
    for path in sorted(runs_dir.glob(f"*/{RUN_FILE}")):
        try:
            params = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not params.get("finished") and RunDir(path.parent).exists():
            found.append(params)
    return sorted(found, key=lambda p: p.get("started", ""), reverse=True)


class TrainingRun(QThread):
    progress = Signal(dict)
    samples = Signal(dict)
    failed = Signal(str)
    completed = Signal(dict)

    def __init__(self, params: dict, library: ModelLibrary, resume: bool):
        super().__init__()
        self.params, self.library, self.resume = params, library, resume
        self.trainer = None
        self._paused = False
        self._stop = False

    def pause(self, paused: bool) -> None:
        self._paused = paused
        if self.trainer is not None:
            self.trainer.set_paused(paused)

    def stop(self) -> None:
        self._stop = True
        if self.trainer is not None:
            self.trainer.request_stop()

    def run(self) -> None:
        from core.engine import resolve_device
        from core.errors import UserError
        from training.finetune import run_finetune

        p = self.params
        try:
            device = str(resolve_device(p["device"]))
            self.trainer = run_finetune(p["avatars"], p["voices"] or None, p["base"], p["steps"], p["run_dir"],
                                        device=device, resume=self.resume, batch_size=p["batch_size"],
                                        sample_every=p["sample_every"], on_progress=self.progress.emit,
                                        on_samples=self.samples.emit)
            self.trainer.set_paused(self._paused)
            if self._stop:
                self.trainer.request_stop()
            result = self.trainer.run(progress=False)
            entry = None
            if not result["stopped"]:
                entry = self.library.add_trained(RunDir(p["run_dir"]).latest(), p["name"], p["base"])
                p["finished"] = True
                Path(p["run_dir"], RUN_FILE).write_text(json.dumps(p, indent=1))
            self.completed.emit({"stopped": result["stopped"], "step": result["step"], "model": entry})
        except UserError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:
            log.error("training failed:\n%s", traceback.format_exc())
            self.failed.emit(f"Training stopped by an unexpected error ({type(exc).__name__}: {exc}). "
                             "The last checkpoint is kept; you can resume the run.")


class TrainingPanel(QWidget):
    title = "Training"
    model_added = Signal(object)    # ModelEntry

    def __init__(self, ctx: AppContext, library: ModelLibrary, runs_dir: Path):
        super().__init__()
        self.ctx, self.library, self.runs_dir = ctx, library, runs_dir
        self.run: TrainingRun | None = None
        self._active = False
        self.history: dict[str, tuple[list, list]] = {}
        self.curves: dict = {}

        self.avatars = FolderField(ctx, "train_avatars", "Avatar images (female/ and male/ subfolders, or one folder)")
        self.voices = FolderField(ctx, "train_voices", "Optional: voices to go with the avatars")
        self.base = QComboBox()
        self.base.setToolTip("The model to start from (from the model library); the active model until you pick one")
        self._base_picked = False
        self._active_model: str | None = None
        self.base.activated.connect(lambda _: setattr(self, "_base_picked", True))  # user choices only
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setValue(int(ctx.settings.value("train/steps", 500)))
        self.batch = QSpinBox()
        self.batch.setRange(1, 256)
        self.batch.setValue(int(ctx.settings.value("train/batch", 4)))
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device.setCurrentText(str(ctx.settings.value("train/device", "auto")))
        self.name = QLineEdit(str(ctx.settings.value("train/name", "my-avatars")))
        self.sample_every = QSpinBox()
        self.sample_every.setRange(1, 100_000)
        self.sample_every.setValue(int(ctx.settings.value("train/sample_every", 50)))
        form = QFormLayout()
        form.addRow("Avatar folder", self.avatars)
        form.addRow("Voices (optional)", self.voices)
        form.addRow("Base model", self.base)
        row = QHBoxLayout()
        for label, w in (("Steps", self.steps), ("Batch", self.batch), ("Device", self.device),
                         ("Preview every", self.sample_every)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addStretch(1)
        form.addRow(row)
        form.addRow("New model name", self.name)
        self.resumable = QComboBox()
        self.resumable.setToolTip("Runs that were stopped or interrupted; Resume continues them")
        form.addRow("Unfinished runs", self.resumable)

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.resume)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.eta = QLabel("")
        buttons = QHBoxLayout()
        for w in (self.start_button, self.resume_button, self.pause_button, self.stop_button):
            buttons.addWidget(w)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.eta)

        import pyqtgraph as pg

        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.preview = ImageView("Sample grid: appears at the first step, then every preview interval", size=256)
        curves_box, preview_box = QGroupBox("Losses"), QGroupBox("Samples (rows: sources; columns: styles)")
        QVBoxLayout(curves_box).addWidget(self.plot)
        QVBoxLayout(preview_box).addWidget(self.preview)
        live = QHBoxLayout()
        live.addWidget(curves_box, 3)
        live.addWidget(preview_box, 2)
        self.state = QLabel("Pick an avatar folder and a base model, then Start.")
        self.state.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.state)
        layout.addLayout(live, 1)
        self._refresh_runs()
        self._set_running(False)

    # -- panel protocol ------------------------------------------------------------------------
    def convert(self) -> None:
        self.start()

    def set_models(self, entries) -> None:
        current = self.base.currentData()
        self.base.clear()
        for e in entries:
            self.base.addItem(f"{e.name} ({e.preset}, {e.steps} steps)", e.path)
        self._select_base(current if self._base_picked else self._active_model or current)

    def follow_active(self, path: str) -> None:
        """The base model is the model in use, until the user picks another."""
        self._active_model = path
        if not self._base_picked:
            self._select_base(path)

    def _select_base(self, path: str | None) -> None:
        found = self.base.findData(path) if path else -1
        if found >= 0:
            self.base.setCurrentIndex(found)

    @property
    def running(self) -> bool:
        """A run is in progress as far as the panel knows: from launch until its thread's end has
        been handled (buttons and the unfinished-runs list updated), not merely until the thread stops."""
        return self._active

    # -- controls ------------------------------------------------------------------------------
    def _refresh_runs(self) -> None:
        self.resumable.clear()
        for p in unfinished_runs(self.runs_dir):
            self.resumable.addItem(f"{p['name']} · {p.get('started', '')} · {p['steps']} steps", p)
        self.resume_button.setEnabled(self.resumable.count() > 0 and not self.running)

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.resume_button.setEnabled(not on and self.resumable.count() > 0)
        self.pause_button.setEnabled(on)
        self.stop_button.setEnabled(on)
        if not on:
            self.pause_button.setChecked(False)

    def start(self) -> None:
        if self.running:
            return
        if not self.avatars.text():
            self.ctx.show_error("Training", "Choose the folder of avatar images to train on.")
            return
        if self.base.currentData() is None:
            self.ctx.show_error("Training", "No base model is available; import or install one first.")
            return
        name = self.name.text().strip() or "my-avatars"
        run_dir = self.runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        params = {"name": name, "avatars": self.avatars.text(), "voices": self.voices.text(),
                  "base": self.base.currentData(), "steps": self.steps.value(), "batch_size": self.batch.value(),
                  "device": self.device.currentText(), "sample_every": self.sample_every.value(),
                  "run_dir": str(run_dir), "started": time.strftime("%Y-%m-%d %H:%M"), "finished": False}
        for key, value in (("steps", params["steps"]), ("batch", params["batch_size"]), ("device", params["device"]),
                           ("name", name), ("sample_every", params["sample_every"])):
            self.ctx.settings.setValue(f"train/{key}", value)
        self.avatars.remember()
        self.voices.remember()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_FILE).write_text(json.dumps(params, indent=1))
        self._launch(params, resume=False)

    def resume(self) -> None:
        params = self.resumable.currentData()
        if params is None or self.running:
            return
        self._launch(params, resume=True)

    def _launch(self, params: dict, resume: bool) -> None:
        self.history.clear()
        self.plot.clear()
        self.curves.clear()
        self.progress.setRange(0, params["steps"])
        self.state.setText(f"{'Resuming' if resume else 'Starting'} {params['name']} (loading data and model)…")
        self.run = TrainingRun(params, self.library, resume)
        self.run.progress.connect(self._progress)
        self.run.samples.connect(self._samples)
        self.run.failed.connect(self._failed)
        self.run.completed.connect(self._completed)
        run = self.run
        self.run.finished.connect(lambda: self._thread_done(run))
        self._active = True
        self._set_running(True)
        self.run.start()

    def pause(self, paused: bool) -> None:
        if self.run is not None:
            self.run.pause(paused)
            self.pause_button.setText("Continue" if paused else "Pause")
            self.state.setText("Paused." if paused else "Training…")

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()
            self.state.setText("Stopping after this step; a checkpoint is saved…")

    def stop_and_wait(self, ms: int = 120_000) -> bool:
        """For closing the window: stop, save, wait. True when the thread ended."""
        if not self.running:
            return True
        self.stop()
        ended = self.run.wait(ms)
        if ended:
            self._thread_done(self.run)  # now, not when the queued `finished` signal gets delivered
        return ended

    # -- live updates ------------------------------------------------------------------------
    def _progress(self, info: dict) -> None:
        import pyqtgraph as pg

        step, total = info["step"], info["total"]
        self.progress.setValue(step)
        self.eta.setText(f"ETA {format_eta(info['eta_s'])}")
        if not self.pause_button.isChecked():
            self.state.setText(f"Training: step {step} of {total}")
        for key in PLOTTED:
            if key in info["losses"]:
                xs, ys = self.history.setdefault(key, ([], []))
                xs.append(step)
                ys.append(info["losses"][key])
                if key not in self.curves:
                    colour = COLOURS[PLOTTED.index(key)]
                    self.curves[key] = self.plot.plot(name=key, pen=pg.mkPen(colour, width=2))
                self.curves[key].setData(xs, ys)

    def _samples(self, info: dict) -> None:
        image = QImage(info["faces"])
        if not image.isNull():
            self.preview.set_image(image)

    def _failed(self, message: str) -> None:
        self.state.setText(message)
        self.ctx.show_error("Training", message)

    def _completed(self, result: dict) -> None:
        if result["stopped"]:
            self.state.setText(f"Stopped at step {result['step']}; the run can be resumed.")
        else:
            entry = result["model"]
            self.state.setText(f"Finished: {entry.name} is in the model library.")
            self.model_added.emit(entry)

    def _thread_done(self, run: TrainingRun) -> None:
        if run is not self.run or not self._active:
            return  # an earlier run's late signal, or an end already handled by stop_and_wait
        self._active = False
        self._set_running(False)
        self._refresh_runs()
