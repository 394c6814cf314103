"""Live tab: speak into the microphone and hear yourself as the chosen avatar.

The style is made on the engine worker (like every other panel); the real-time path is a
xfavot_studio.live.LiveSession: PortAudio's callback only moves samples through ring buffers and
a worker thread converts blocks with core.streaming.StreamingConverter (which takes the engine's
lock). The panel polls the session's stats ten times a second: level meters, the latency split
(block, lookahead, joins, compute p50/p95, device) and the dropped-block counter. A device that
fails mid-stream stops the session with a message; the window stays responsive.
Any output device can be chosen, so a virtual cable or a PulseAudio/PipeWire null sink can carry
the converted voice into OBS or a call (README "Live voice").
"""
from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .context import AppContext
from .widgets import ImageView, ReferenceTabs, device_combo, gender_combo, pil_to_qimage

BLOCKS_MS = (50, 100, 150, 200, 300)


class LivePanel(QWidget):
    title = "Live"
    session_failed = Signal(str)   # from the live worker thread to the GUI thread

    def __init__(self, ctx: AppContext, stream_factory=None):
        super().__init__()
        self.ctx = ctx
        self.stream_factory = stream_factory  # tests and --screenshot: a file-fed stand-in for the sound card
        self.session = None
        self.reference = ReferenceTabs(ctx, ("face", "voice", "style"), "Avatar to sound like")
        self.gender = gender_combo()
        self.avatar = ImageView("The avatar of the chosen style appears here while live", size=256)

        self.input = device_combo(ctx, "input")
        self.output = device_combo(ctx, "output")
        self.block = QComboBox()
        for ms in BLOCKS_MS:
            self.block.addItem(f"{ms} ms", ms)
        self.block.setCurrentIndex(max(0, self.block.findData(int(ctx.settings.value("live/block_ms", 100)))))
        self.block.currentIndexChanged.connect(lambda: ctx.settings.setValue("live/block_ms", self.block.currentData()))
        self.block.setToolTip("Shorter blocks: less latency, more compute per second of audio")
        self.transpose = QComboBox()
        self.transpose.addItem("Auto: to the avatar's register", "auto")
        self.transpose.addItem("Off", "0")
        for n in range(-12, 13):
            if n:
                self.transpose.addItem(f"{n:+d} semitones", str(n))
        self.transpose.setCurrentIndex(max(0, self.transpose.findData(str(ctx.settings.value("live/transpose", "auto")))))
        self.transpose.currentIndexChanged.connect(
            lambda: ctx.settings.setValue("live/transpose", self.transpose.currentData()))
        self.transpose.setToolTip("Moves the pitch the model follows, as voice changers' transpose: auto listens to "
                                  "your first 1.5 s of voiced speech and moves it to the avatar's register")
        self.monitor = QCheckBox("Monitor (play the converted voice)")
        self.monitor.setChecked(True)
        self.monitor.toggled.connect(lambda on: self.session and setattr(self.session, "monitor", on))
        self.bypass = QCheckBox("Bypass (pass my own voice through)")
        self.bypass.toggled.connect(lambda on: self.session and setattr(self.session, "bypass", on))
        self.start_button = QPushButton("Start live  (Ctrl+L)")
        self.start_button.setCheckable(True)
        self.start_button.toggled.connect(self._toggled)

        self.in_level, self.out_level = QProgressBar(), QProgressBar()
        for bar in (self.in_level, self.out_level):
            bar.setRange(0, 100)
            bar.setTextVisible(False)
        self.latency = QLabel("Latency: not running")
        self.latency.setWordWrap(True)
        self.dropped = QLabel("Dropped blocks: 0")
        self.pitch = QLabel("")
        self.state = QLabel("")
        self.state.setWordWrap(True)

        devices = QGroupBox("Audio")
        form = QFormLayout(devices)
        form.addRow("Microphone", self.input)
        form.addRow("Output (speakers or a virtual cable)", self.output)
        form.addRow("Block", self.block)
        form.addRow("Pitch", self.transpose)
        form.addRow(self.monitor)
        form.addRow(self.bypass)
        form.addRow("Input level", self.in_level)
        form.addRow("Output level", self.out_level)
        meters = QGroupBox("Live")
        box = QVBoxLayout(meters)
        box.addWidget(self.avatar, 1)
        box.addWidget(self.latency)
        box.addWidget(self.dropped)
        box.addWidget(self.pitch)
        box.addWidget(self.state)

        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Reference</b>: the avatar (or voice, or latent style) to sound like"))
        left.addWidget(self.reference, 1)
        left.addWidget(self.gender)
        left.addWidget(devices)
        left.addWidget(self.start_button)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(meters, 1)

        self.poll = QTimer(self)
        self.poll.setInterval(100)
        self.poll.timeout.connect(self._refresh)
        self.session_failed.connect(self._failed)

    # -- shortcuts the main window routes here -------------------------------------------------
    def run_action(self) -> None:
        self.start_button.toggle()

    def receive_style(self, style, image) -> None:
        self.reference.receive_style(style, image)

    # -- start / stop --------------------------------------------------------------------------
    def _toggled(self, on: bool) -> None:
        (self.start if on else self.stop)()

    def start(self) -> None:
        get_style = self.reference.style_getter(self.gender.currentData(), "Live voice")
        if get_style is None:
            self._set_button(False)
            return
        block_ms = float(self.block.currentData())
        transpose = None if self.transpose.currentData() == "auto" else int(self.transpose.currentData())
        devices = (self.input.currentData(), self.output.currentData())
        factory = self.stream_factory

        def prepare(engine, job):
            from core.streaming import StreamingConverter

            style = get_style(engine)
            # the avatar of this style: the first bundled face restyled with it
            faces = self.ctx.sample_files("faces")
            avatar = engine.face_from_style(str(faces[0]), style) if faces else None
            return StreamingConverter(engine, style, block_ms=block_ms, transpose=transpose), avatar

        self.state.setText("Preparing the voice…")
        job = self.ctx.worker.submit(prepare, "Live voice")
        job.done.connect(lambda out: self._begin(*out, devices, factory))
        job.failed.connect(self._failed)
        self._job = job

    def _begin(self, converter, avatar, devices, factory) -> None:
        from .live import LiveSession

        if not self.start_button.isChecked():  # stopped while preparing
            return
        if avatar is not None:
            self.avatar.set_image(pil_to_qimage(avatar.resize((256, 256))))
        self.session = LiveSession(converter, *devices, stream_factory=factory, on_error=self.session_failed.emit)
        self.session.monitor, self.session.bypass = self.monitor.isChecked(), self.bypass.isChecked()
        try:
            self.session.start()
        except RuntimeError as exc:
            self.session = None
            self._failed(str(exc))
            return
        self.state.setText("Live: speak now.")
        self.poll.start()

    def stop(self) -> None:
        self.poll.stop()
        if self.session is not None:
            self.session.stop()
            self._refresh()
            self.session = None
            self.state.setText("Stopped.")
        self._set_button(False)

    def _failed(self, message: str) -> None:
        self.stop()
        self.state.setText(message)
        self.ctx.show_error("Live voice", message)

    def _set_button(self, on: bool) -> None:
        self.start_button.blockSignals(True)
        self.start_button.setChecked(on)
        self.start_button.setText("Stop live  (Ctrl+L)" if on else "Start live  (Ctrl+L)")
        self.start_button.blockSignals(False)

    def _refresh(self) -> None:
        if self.session is None:
            return
        s = self.session.stats
        self._set_button(True)
        self.in_level.setValue(int(100 * min(1.0, s.input_level)))
        self.out_level.setValue(int(100 * min(1.0, s.output_level)))
        self.latency.setText(
            f"Latency ≈ {s.end_to_end_ms:.0f} ms: block {s.block_ms:.0f} + lookahead {s.lookahead_ms:.0f} + joins "
            f"{s.joins_ms:.0f} + compute {s.percentile(50):.0f} (p95 {s.percentile(95):.0f}) + device "
            f"{s.device_latency_ms:.0f}")
        self.dropped.setText(f"Dropped blocks: {s.dropped_blocks} · underruns: {s.underruns} · blocks: {s.blocks}")
        self.pitch.setText(self.session.converter.pitch_summary())

    def shutdown(self) -> None:
        self.stop()

