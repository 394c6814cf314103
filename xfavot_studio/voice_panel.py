"""Voice panel: "a voice that matches this face" (and one-shot voice -> voice, and a latent style)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from .context import AppContext
from .face_panel import StyleSlot, gender_combo
from .widgets import SAMPLE_RATE, FaceSlot, MelView, PlayButton, VoiceSlot, WaveformView, device_combo, save_file_dialog


class VoicePanel(QWidget):
    title = "Voice from face"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.result: np.ndarray | None = None
        self.source = VoiceSlot(ctx, "Source voice (what is said)", "voices")
        self.source_mel = MelView()
        self.source.changed.connect(self._source_changed)

        self.ref_face = FaceSlot(ctx, "Reference face or avatar", "faces")
        self.ref_voice = VoiceSlot(ctx, "Reference voice", "voices")
        self.ref_style = StyleSlot()
        self.reference = QTabWidget()
        self.reference.addTab(self.ref_face, "Face")
        self.reference.addTab(self.ref_voice, "Voice")
        self.reference.addTab(self.ref_style, "Latent style")
        self.gender = gender_combo()
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
        left.addWidget(self.convert_button)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(result_box, 1)

    def record(self) -> None:
        self.source.toggle_recording()

    def play(self) -> None:
        (self.play_result if self.result is not None else self.source.play_button).play()

    def receive_style(self, style, image) -> None:
        self.ref_style.set_style(style, image)
        self.reference.setCurrentWidget(self.ref_style)

    def _source_changed(self) -> None:
        wav = self.source.samples
        job = self.ctx.worker.submit(lambda e, job: e.mel_picture(wav), "Source mel", key="source-mel")
        job.done.connect(self.source_mel.set_mel)
        self._mel_job = job

    def convert(self) -> None:
        if self.source.samples is None:
            self.ctx.show_error("Voice conversion", "Record or open a source voice first.")
            return
        from core.engine import Audio

        src = Audio(self.source.samples, SAMPLE_RATE)
        gender = self.gender.currentData()
        mode = self.reference.currentWidget()
        if mode is self.ref_face:
            if not self.ref_face.path:
                self.ctx.show_error("Voice from face", "Choose a reference face or avatar first.")
                return
            ref = self.ref_face.path
            fn, label, what = (lambda e, job: e.voice_from_face(src, ref, gender)), "Voice from face", Path(ref).stem
        elif mode is self.ref_voice:
            if self.ref_voice.samples is None:
                self.ctx.show_error("Voice from voice", "Record or open a reference voice first.")
                return
            ref_audio = Audio(self.ref_voice.samples, SAMPLE_RATE)
            fn, label, what = (lambda e, job: e.voice_from_voice(src, ref_audio, gender)), "Voice from voice", \
                self.ref_voice.label
        else:
            if self.ref_style.style is None:
                self.ctx.show_error("Voice from style", "Send a style here from the Latent panel first.")
                return
            style = self.ref_style.style
            fn, label, what = (lambda e, job: e.voice_from_style(src, style)), "Voice from style", "latent style"

        def run(engine, job):
            wav = fn(engine, job)
            return wav, engine.mel_picture(wav)

        self.convert_button.setEnabled(False)
        self._job = self.ctx.worker.submit(run, label)
        self._job.done.connect(lambda out: self._show(out, f"{self.source.label} → {what}"))
        self._job.failed.connect(lambda msg: self.ctx.show_error(label, msg))
        self._job.finished.connect(lambda: self.convert_button.setEnabled(True))

    def _show(self, out, caption: str) -> None:
        self.result, mel = out
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
