"""Latent panel: sample matching face + voice styles from a domain (the demo page's latent-guided
generation), lock or reroll seeds, interpolate between two styles, send a style to the other panels.

Each cell shows the source face translated with a sampled style; its voice (the source voice
converted with the same style) is made when first played, so sampling a grid stays quick.
"""
from __future__ import annotations

import random

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .context import AppContext
from .widgets import SAMPLE_RATE, FaceSlot, ImageView, PlayButton, VoiceSlot, pil_to_qimage

MAX_CELLS = 12


class LatentCell(QFrame):
    """One sampled style: its face, seed, lock, play, A/B and send buttons."""
    send = Signal(str, object)        # "face"/"voice", this cell
    pick = Signal(str, object)        # "A"/"B", this cell

    def __init__(self, ctx: AppContext, panel: "LatentPanel"):
        super().__init__()
        self.ctx, self.panel = ctx, panel
        self.setFrameShape(QFrame.StyledPanel)
        self.seed = 0
        self.style = None
        self.voice: np.ndarray | None = None
        self.view = ImageView("", size=128)
        self.caption = QLabel("")
        self.lock = QCheckBox("Lock")
        self.lock.setToolTip("Keep this seed when rerolling")
        self.play_button = PlayButton(ctx, self._voice_or_make, "▶", lazy=True)
        self.play_button.setToolTip(self.play_button.toolTip() + " · the matching voice")
        top = QHBoxLayout()
        top.addWidget(self.lock)
        top.addStretch(1)
        top.addWidget(self.play_button)
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for text, tip, slot in (("A", "Interpolation start", lambda: self.pick.emit("A", self)),
                                ("B", "Interpolation end", lambda: self.pick.emit("B", self)),
                                ("→Face", "Use this style in the Face panel", lambda: self.send.emit("face", self)),
                                ("→Voice", "Use this style in the Voice panel", lambda: self.send.emit("voice", self))):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)
        layout.addLayout(top)
        layout.addLayout(buttons)
        self.view.setMinimumSize(64, 64)

    def set_result(self, style, image: QImage) -> None:
        self.style, self.voice = style, None
        self.seed = style.seed
        self.view.set_image(image)
        self.caption.setText(f"{style.domain} · seed {style.seed}")

    def _voice_or_make(self):
        """Play the cached voice, or make it now and play it when ready."""
        if self.voice is not None:
            return self.voice
        if self.style is not None:
            self.panel.make_voice(self.style, self, play=True)
        return None


class LatentPanel(QWidget):
    title = "Latent"
    send_style = Signal(str, object, object)   # "face"/"voice", style, image

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.cells: list[LatentCell] = []
        self.a = self.b = None
        self.mix_voice: np.ndarray | None = None
        self.mix_style = None

        self.domain = QComboBox()
        self.domain.setToolTip("A gender, or one speaker of the model")
        self.count = QSpinBox()
        self.count.setRange(1, MAX_CELLS)
        self.count.setValue(8)
        self.count.setPrefix("samples: ")
        self.first_seed = QSpinBox()
        self.first_seed.setRange(0, 2**31 - 1)
        self.first_seed.setPrefix("seed: ")
        self.sample_button = QPushButton("Sample  (Ctrl+Enter)")
        self.sample_button.clicked.connect(self.convert)
        reroll = QPushButton("Reroll unlocked")
        reroll.clicked.connect(self.reroll)
        top = QHBoxLayout()
        for w in (QLabel("Domain:"), self.domain, self.count, self.first_seed, self.sample_button, reroll):
            top.addWidget(w)
        top.addStretch(1)

        self.source_face = FaceSlot(ctx, "Source face", "faces")
        self.source_voice = VoiceSlot(ctx, "Source voice (for the matching voices)", "voices")
        for slot in (self.source_face.view,):
            slot.setMinimumSize(96, 96)
        sources = QVBoxLayout()
        sources.addWidget(self.source_face, 1)
        sources.addWidget(self.source_voice)

        self.grid = QGridLayout()
        grid_box = QGroupBox("Sampled styles")
        grid_box.setLayout(self.grid)

        mix_box = QGroupBox("Interpolate between A and B")
        self.a_label, self.b_label = QLabel("A: pick a cell"), QLabel("B: pick a cell")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.valueChanged.connect(self.update_mix)
        self.mix_view = ImageView("", size=128)
        self.mix_play = PlayButton(ctx, self._mix_voice_or_make, "▶ Play mix", lazy=True)
        send_face = QPushButton("Mix →Face")
        send_face.clicked.connect(lambda: self._send_mix("face"))
        send_voice = QPushButton("Mix →Voice")
        send_voice.clicked.connect(lambda: self._send_mix("voice"))
        mix = QHBoxLayout(mix_box)
        ends = QVBoxLayout()
        ends.addWidget(self.a_label)
        ends.addWidget(self.slider)
        ends.addWidget(self.b_label)
        row = QHBoxLayout()
        for w in (self.mix_play, send_face, send_voice):
            row.addWidget(w)
        ends.addLayout(row)
        mix.addLayout(ends, 2)
        mix.addWidget(self.mix_view, 1)

        right = QVBoxLayout()
        right.addWidget(grid_box, 3)
        right.addWidget(mix_box, 1)
        body = QHBoxLayout()
        body.addLayout(sources, 1)
        body.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)

    def set_domains(self, domains: list[str]) -> None:
        current = self.domain.currentText()
        self.domain.clear()
        self.domain.addItems(domains)
        if current in domains:
            self.domain.setCurrentText(current)

    def record(self) -> None:
        self.source_voice.toggle_recording()

    def play(self) -> None:
        self.mix_play.play()

    # -- sampling ----------------------------------------------------------------------------
    def convert(self) -> None:
        self._generate(list(range(self.first_seed.value(), self.first_seed.value() + self.count.value())), all_cells=True)

    def reroll(self) -> None:
        if not self.cells:
            self.convert()
            return
        seeds = [c.seed if c.lock.isChecked() else random.randrange(2**31 - 1) for c in self.cells]
        self._generate(seeds, all_cells=False)

    def _generate(self, seeds: list[int], all_cells: bool) -> None:
        if not self.source_face.path:
            self.ctx.show_error("Latent sampling", "Choose a source face first (Samples has some).")
            return
        if not self.domain.count():
            self.ctx.show_error("Latent sampling", "No model is loaded.")
            return
        while len(self.cells) < len(seeds):
            cell = LatentCell(self.ctx, self)
            cell.send.connect(self._send_cell)
            cell.pick.connect(self._pick)
            self.cells.append(cell)
        for extra in self.cells[len(seeds):]:
            extra.setParent(None)
        self.cells = self.cells[:len(seeds)]
        for i, cell in enumerate(self.cells):
            self.grid.addWidget(cell, i // 4, i % 4)
        todo = [i for i, c in enumerate(self.cells) if all_cells or not c.lock.isChecked() or c.style is None]
        domain, face = self.domain.currentText(), self.source_face.path

        def run(engine, job):
            styles = [engine.sample_style(domain, seeds[i]) for i in todo]
            return styles, engine.face_from_style([face] * len(styles), styles)

        self.sample_button.setEnabled(False)
        self._job = self.ctx.worker.submit(run, "Latent sampling", timed=True)
        self._job.done.connect(lambda out: self._show(todo, *out))
        self._job.failed.connect(lambda msg: self.ctx.show_error("Latent sampling", msg))
        self._job.finished.connect(lambda: self.sample_button.setEnabled(True))

    def _show(self, todo: list[int], styles, images) -> None:
        for i, style, img in zip(todo, styles, images):
            self.cells[i].set_result(style, pil_to_qimage(img))

    def make_voice(self, style, target, play: bool = False) -> None:
        if self.source_voice.samples is None:
            self.ctx.show_error("Matching voice", "Record or open a source voice first (the words it will say).")
            return
        from core.engine import Audio

        src = Audio(self.source_voice.samples, SAMPLE_RATE)
        job = self.ctx.worker.submit(lambda e, job: e.voice_from_style(src, style), "Matching voice", timed=True)

        def done(wav):
            if isinstance(target, LatentCell):
                target.voice = wav
                button = target.play_button
            else:
                self.mix_voice = wav
                button = self.mix_play
            if play:
                button.play()

        job.done.connect(done)
        job.failed.connect(lambda msg: self.ctx.show_error("Matching voice", msg))
        self._voice_job = job

    # -- interpolation and sending -----------------------------------------------------------
    def _pick(self, which: str, cell: LatentCell) -> None:
        if cell.style is None:
            return
        setattr(self, which.lower(), cell.style)
        (self.a_label if which == "A" else self.b_label).setText(f"{which}: {cell.caption.text()}")
        self.update_mix()

    def update_mix(self) -> None:
        if self.a is None or self.b is None or not self.source_face.path:
            return
        style = self.a.mix(self.b, self.slider.value() / 100)
        self.mix_style, self.mix_voice = style, None
        face = self.source_face.path
        # a dragged slider queues many mixes: the key keeps only the newest one waiting
        job = self.ctx.worker.submit(lambda e, job: e.face_from_style(face, style), "Interpolate", key="mix", timed=True)
        job.done.connect(lambda img: self.mix_view.set_image(pil_to_qimage(img)))
        job.failed.connect(lambda msg: self.ctx.show_error("Interpolate", msg))
        self._mix_job = job

    def _mix_voice_or_make(self):
        if self.mix_voice is not None:
            return self.mix_voice
        if self.mix_style is not None:
            self.make_voice(self.mix_style, None, play=True)
        return None

    def _send_cell(self, where: str, cell: LatentCell) -> None:
        if cell.style is not None:
            self.send_style.emit(where, cell.style, cell.view.image())

    def _send_mix(self, where: str) -> None:
        if self.mix_style is not None:
            self.send_style.emit(where, self.mix_style, self.mix_view.image())
