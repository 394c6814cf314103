"""Voice panel: "a voice that matches this face" (and one-shot voice -> voice, and a latent style)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from . import display
from .context import AppContext
from .widgets import (
    SAMPLE_RATE,
    GenderNote,
    MelView,
    PlayButton,
    ReferenceTabs,
    VoiceSlot,
    WaveformView,
    device_combo,
    gender_combo,
    save_file_dialog,
)


class VoicePanel(QWidget):
    title = "Voice from face"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.result: np.ndarray | None = None
        self.source = VoiceSlot(ctx, "Source voice (what is said)", "voices")
        self.source_mel = MelView()
        self.source.changed.connect(self._source_changed)

        self.reference = ReferenceTabs(ctx, ("face", "voice", "style"), "Reference face or avatar")
        self.ref_voice, self.ref_face, self.ref_style = self.reference.voice, self.reference.face, self.reference.style
        self.gender = gender_combo()
        self.gender_note = GenderNote()
        self.convert_button = QPushButton("Convert voice  (Ctrl+Enter)")
        self.convert_button.setDefault(True)
        self.convert_button.clicked.connect(self.convert)

        result_box = QGroupBox("Result")
        self.result_name = QLabel("The converted voice appears here.")
        self.result_wave = WaveformView()
        self.result_mel = MelView()
        self.play_result = PlayButton(ctx, lambda: self.result, "▶ Play result  (Space)")
        self.output = device_combo(ctx, "output")
        save = QPushButton("Save WAV/FLAC…")
        save.clicked.connect(self.save)
        row = QHBoxLayout()
        row.addWidget(self.play_result)
        row.addWidget(QLabel("Output:"))
        row.addWidget(self.output, 1)
        row.addWidget(save)
        box = QVBoxLayout(result_box)
        box.addWidget(self.result_name)
        box.addWidget(self.result_wave)
        box.addWidget(QLabel("Result mel"))
        box.addWidget(self.result_mel)
        box.addWidget(QLabel("Source mel"))
        box.addWidget(self.source_mel)
        box.addLayout(row)
        box.addStretch(1)

        left = QVBoxLayout()
        left.addWidget(self.source)
        left.addWidget(QLabel("<b>Reference</b>: the face (or voice, or style) the new voice should match"))
        left.addWidget(self.reference, 1)
        left.addWidget(self.gender)
        left.addWidget(self.gender_note)
        left.addWidget(self.convert_button)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(result_box, 1)

    def record(self) -> None:
        self.source.toggle_recording()

    def play(self) -> None:
        (self.play_result if self.result is not None else self.source.play_button).play()

    def receive_style(self, style, image) -> None:
        self.reference.receive_style(style, image)

    def _source_changed(self) -> None:
        wav = self.source.samples
        job = self.ctx.worker.submit(lambda e, job: display.mel_picture(e, wav), "Source mel", key="source-mel")
        job.done.connect(self.source_mel.set_mel)
        self._mel_job = job

    def convert(self) -> None:
        if self.source.samples is None:
            self.ctx.show_error("Voice conversion", "Record or open a source voice first.")
            return
        from core.engine import Audio

        src = Audio(self.source.samples, SAMPLE_RATE)
        label = f"Voice from {self.reference.kind}"
        chosen = self.gender.currentData()
        get_style = self.reference.style_getter(chosen, label)
        if get_style is None:
            return
        what = self.reference.describe()

        def run(engine, job):
            style = get_style(engine)
            wav = engine.voice_from_style(src, style)
            return wav, display.mel_picture(engine, wav), style

        self.convert_button.setEnabled(False)
        self._job = self.ctx.worker.submit(run, label, timed=True)
        self._job.done.connect(lambda out: self._show(out, f"{self.source.label} → {what}", chosen))
        self._job.failed.connect(lambda msg: self.ctx.show_error(label, msg))
        self._job.finished.connect(lambda: self.convert_button.setEnabled(True))

    def _show(self, out, caption: str, chosen: str | None) -> None:
        self.result, mel, style = out
        self.gender_note.show_reading(style, chosen)
        self.result_name.setText(f"{caption} · {len(self.result) / SAMPLE_RATE:.1f} s")
        self.result_wave.set_samples(self.result)
        self.result_mel.set_mel(mel)

    def save(self) -> None:
        if self.result is None:
            self.ctx.show_error("Save", "Convert a voice first.")
            return
        path = save_file_dialog(self.ctx, self, "results", "Save voice", "converted.wav",
                                "WAV audio (*.wav);;FLAC audio (*.flac)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".wav", ".flac"):
            path += ".wav"
        wav = self.result
        job = self.ctx.worker.submit(lambda e, job: e.save_voice(path, wav), "Save voice")
        job.done.connect(lambda _: self.ctx.status(f"Saved {path}"))
        job.failed.connect(lambda msg: self.ctx.show_error("Save failed", msg))
        self._save_job = job
