"""Reusable pieces of the panels: image and audio slots (file, drag-and-drop, samples, microphone),
waveform and mel views, playback. Heavy work (reading audio) goes through the engine worker."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.audio import AUDIO_EXTS, CLIPPED_SHARE, clipped_share
from core.errors import UserError
from core.face import IMAGE_EXTS, load_image

from . import audio_io
from .context import AppContext

SAMPLE_RATE = 24000
WARNING_STYLE = "color: #b35900;"  # amber: a note the user should read before going on
IMAGE_FILTER = "Images (" + " ".join(f"*{e}" for e in sorted(IMAGE_EXTS)) + ")"
AUDIO_FILTER = "Audio (" + " ".join(f"*{e}" for e in sorted(AUDIO_EXTS)) + ")"


def pil_to_qimage(img) -> QImage:
    rgb = img.convert("RGB")
    data = rgb.tobytes()
    q = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format_RGB888)
    return q.copy()  # own the pixels: `data` dies with this function


class FileDrops:
    """Mixin for widgets that take files by drag-and-drop: files with `drop_suffixes` go to
    `take_dropped(path)`; a slot takes the first, a list (`drop_many`) all of them."""
    drop_suffixes: set[str] = set()
    drop_many = False

    def _dropped(self, event) -> list[str]:
        paths = [u.toLocalFile() for u in event.mimeData().urls()]
        paths = [p for p in paths if p and Path(p).suffix.lower() in self.drop_suffixes]
        return paths if self.drop_many else paths[:1]

    def dragEnterEvent(self, event) -> None:
        if self._dropped(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for path in self._dropped(event):
            self.take_dropped(path)


PREVIEW_PIXELS = 1024  # longest side of an image shown in the app (the engine reads the file itself)


def readable_image(ctx: AppContext, path: str) -> QImage | None:
    """A preview of the image, read by the same loader as the engine (so whatever it accepts, up
    to 20k x 20k photos in any mode, shows here too), or None after telling the user why not."""
    try:
        img = load_image(path)
    except UserError as exc:
        ctx.show_error("Cannot open image", str(exc))
        return None
    img.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    return pil_to_qimage(img)


def samples_button(ctx: AppContext, parent: QWidget, kind: str, pick) -> QToolButton:
    """'Samples' drop-down listing the bundled faces or voices; pick(path) on a choice."""
    button = QToolButton()
    button.setText("Samples")
    button.setPopupMode(QToolButton.InstantPopup)
    menu = QMenu(parent)
    for sample in ctx.sample_files(kind):
        icon = QIcon(str(sample)) if kind == "faces" else QIcon()
        menu.addAction(icon, sample.stem, lambda p=sample: pick(str(p)))
    button.setMenu(menu)
    button.setEnabled(not menu.isEmpty())
    return button


class ImageView(QLabel):
    """Shows an image scaled to fit, keeping its aspect; a hint when empty."""

    def __init__(self, placeholder: str = "", size: int = 192):
        super().__init__(placeholder)
        self._image: QImage | None = None
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(size // 2, size // 2)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setStyleSheet("QLabel { background: palette(base); border: 1px solid palette(mid); color: palette(mid); }")
        self._hint = placeholder
        self._size = size
        self.setWordWrap(True)

    def sizeHint(self) -> QSize:
        return QSize(self._size, self._size)

    def image(self) -> QImage | None:
        return self._image

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText(self._hint)
        self._rescale()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._image is not None:
            ratio = self.devicePixelRatioF()
            pix = QPixmap.fromImage(self._image).scaled(self.size() * ratio, Qt.KeepAspectRatio, Qt.SmoothTransformation)
            pix.setDevicePixelRatio(ratio)
            self.setPixmap(pix)


class WaveformView(QWidget):
    """Min/max envelope of a waveform, one column per pixel."""

    def __init__(self):
        super().__init__()
        self._samples = np.zeros(0, np.float32)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def samples(self) -> np.ndarray:
        return self._samples

    def set_samples(self, samples: np.ndarray | None) -> None:
        self._samples = np.zeros(0, np.float32) if samples is None else np.asarray(samples, np.float32)
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        w, h = self.width(), self.height()
        mid = h / 2
        p.setPen(QPen(self.palette().mid().color()))
        p.drawLine(0, int(mid), w, int(mid))
        if self._samples.size:
            edges = np.linspace(0, self._samples.size, w + 1).astype(int)
            p.setPen(QPen(self.palette().highlight().color()))
            for x in range(w):
                seg = self._samples[edges[x]:max(edges[x + 1], edges[x] + 1)]
                lo, hi = float(seg.min()), float(seg.max())
                p.drawLine(QPointF(x, mid - hi * mid), QPointF(x, mid - lo * mid))
        p.end()


def _colormap() -> np.ndarray:
    """256-entry magma-like ramp (dark blue -> red -> pale yellow)."""
    stops = np.array([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], float)
    x = np.linspace(0, len(stops) - 1, 256)
    i = np.minimum(x.astype(int), len(stops) - 2)
    t = (x - i)[:, None]
    return ((1 - t) * stops[i] + t * stops[i + 1]).astype(np.uint8)


COLORMAP = _colormap()


class MelView(ImageView):
    """A log-mel picture (values 0..1, low bands at the bottom)."""

    def __init__(self):
        super().__init__("mel spectrogram", size=160)
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_mel(self, mel: np.ndarray | None) -> None:
        if mel is None or mel.size == 0:
            self.set_image(None)
            return
        rgb = np.ascontiguousarray(COLORMAP[(np.clip(mel[::-1], 0, 1) * 255).astype(np.uint8)])
        h, w, _ = rgb.shape
        self.set_image(QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy())

    def _rescale(self) -> None:  # a spectrogram fills its box
        if self._image is not None:
            self.setPixmap(QPixmap.fromImage(self._image).scaled(self.size(), Qt.IgnoreAspectRatio, Qt.SmoothTransformation))


def device_combo(ctx: AppContext, kind: str) -> QComboBox:
    """Input or output device chooser, remembered in settings; disabled with a reason when there are none."""
    combo = QComboBox()
    combo.addItem("System default", None)
    for index, name in audio_io.devices(kind):
        combo.addItem(name, index)
    saved = ctx.settings.value(f"audio/{kind}")
    if saved is not None:
        found = combo.findText(str(saved))
        if found >= 0:
            combo.setCurrentIndex(found)
    combo.currentTextChanged.connect(lambda text: ctx.settings.setValue(f"audio/{kind}", text))
    reason = audio_io.unavailable_reason(kind)
    combo.setEnabled(not reason)
    combo.setToolTip(reason or f"{kind} device")
    return combo


class PlayButton(QPushButton):
    """Plays whatever `source()` returns (samples at 24 kHz) on the chosen output device."""

    def __init__(self, ctx: AppContext, source, text: str = "▶ Play", lazy: bool = False):
        super().__init__(text)
        self.ctx, self.source = ctx, source
        self.lazy = lazy  # source() may return None while it makes the audio (and plays it when ready)
        reason = audio_io.unavailable_reason("output")
        self.setEnabled(not reason)
        self.setToolTip(reason or "Play (Space)")
        self.clicked.connect(self.play)

    def play(self) -> None:
        samples = self.source()
        if samples is None or not len(samples):
            self.ctx.status("Making the voice; it plays when ready" if self.lazy else "Nothing to play yet")
            return
        device = self.ctx.settings.value("audio/output")
        index = next((i for i, name in audio_io.devices("output") if name == device), None)
        problem = audio_io.play(samples, SAMPLE_RATE, index)
        if problem:
            self.ctx.show_error("Playback", problem)


def save_file_dialog(ctx: AppContext, parent: QWidget, key: str, title: str, name: str, filters: str) -> str:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(ctx.last_dir(key)) / name), filters)
    if path:
        ctx.remember_dir(key, path)
    return path


class FaceSlot(FileDrops, QGroupBox):
    """One face: open a file, drop one, or pick a bundled sample avatar."""
    changed = Signal(str)
    drop_suffixes = IMAGE_EXTS

    def __init__(self, ctx: AppContext, title: str, key: str):
        super().__init__(title)
        self.ctx, self.key, self.path = ctx, key, ""
        self.view = ImageView("Drop a face image here\nor use Open… / Samples", size=176)
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.choose)
        row = QHBoxLayout()
        row.addWidget(open_button)
        row.addWidget(samples_button(ctx, self, "faces", self.set_path))
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        self.setAcceptDrops(True)

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.title(), self.ctx.last_dir(self.key), IMAGE_FILTER)
        if path:
            self.set_path(path)

    def set_path(self, path: str) -> None:
        image = readable_image(self.ctx, path)
        if image is None:
            return
        self.ctx.remember_dir(self.key, path)
        self.path = path
        self.view.set_image(image)
        self.view.setToolTip(path)
        self.changed.emit(path)

    def take_dropped(self, path: str) -> None:
        self.set_path(path)


class VoiceSlot(FileDrops, QGroupBox):
    """One voice: open a file, drop one, pick a sample, or record from the microphone (R)."""
    changed = Signal()
    drop_suffixes = AUDIO_EXTS

    def __init__(self, ctx: AppContext, title: str, key: str):
        super().__init__(title)
        self.ctx, self.key = ctx, key
        self.samples: np.ndarray | None = None    # 24 kHz mono, as the engine reads it
        self.label = ""
        self.recorder = audio_io.Recorder()
        self.recorder.level.connect(lambda v: self.meter.setValue(int(100 * v)))
        self.recorder.finished.connect(self._recorded)
        self.recorder.failed.connect(lambda msg: self._record_failed(msg))

        self.name = QLabel("No voice yet: record one, open a file, drop one here or pick a sample.")
        self.name.setWordWrap(True)
        self.level_note = QLabel("")  # a recording made too loud: it clips
        self.level_note.setWordWrap(True)
        self.level_note.setStyleSheet(WARNING_STYLE)
        self.level_note.hide()
        self.wave = WaveformView()
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.choose)
        samples = samples_button(ctx, self, "voices", self.load_file)
        self.play_button = PlayButton(ctx, lambda: self.samples)

        self.input = device_combo(ctx, "input")
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._toggle_record)
        self.max_seconds = QDoubleSpinBox()
        self.max_seconds.setRange(1, 120)
        self.max_seconds.setSuffix(" s max")
        self.max_seconds.setValue(float(ctx.settings.value("audio/max_seconds", 10.0)))
        self.max_seconds.valueChanged.connect(lambda v: ctx.settings.setValue("audio/max_seconds", v))
        self.meter = QProgressBar()
        self.meter.setRange(0, 100)
        self.meter.setTextVisible(False)
        self.meter.setMaximumHeight(10)
        reason = audio_io.unavailable_reason("input")
        for w in (self.record_button, self.max_seconds, self.meter):
            w.setEnabled(not reason)
            w.setToolTip(reason or "Record from the microphone (R); press again to stop")

        files = QHBoxLayout()
        files.addWidget(open_button)
        files.addWidget(samples)
        files.addWidget(self.play_button)
        files.addStretch(1)
        mic = QHBoxLayout()
        mic.addWidget(self.record_button)
        mic.addWidget(self.input, 1)
        mic.addWidget(self.max_seconds)
        self.name.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        layout = QVBoxLayout(self)
        layout.addWidget(self.name)
        layout.addWidget(self.level_note)
        layout.addWidget(self.wave)
        layout.addLayout(files)
        layout.addLayout(mic)
        layout.addWidget(self.meter)
        layout.addStretch(1)
        self.setAcceptDrops(True)

    # -- files ---------------------------------------------------------------------------------
    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.title(), self.ctx.last_dir(self.key), AUDIO_FILTER)
        if path:
            self.load_file(path)

    def load_file(self, path: str) -> None:
        self.ctx.remember_dir(self.key, path)
        self.name.setText(f"Reading {Path(path).name}…")
        job = self.ctx.worker.submit(lambda engine, job: engine.read_voice(path), f"Read {Path(path).name}")
        job.done.connect(lambda wav: self.set_samples(wav, Path(path).name))
        job.failed.connect(lambda msg: self._load_failed(msg))
        self._job = job

    def _load_failed(self, message: str) -> None:
        self.name.setText("Could not read that file.")
        self.ctx.show_error("Cannot use this voice", message)

    def set_samples(self, samples: np.ndarray, label: str) -> None:
        self.samples, self.label = np.asarray(samples, np.float32), label
        self.name.setText(f"{label} · {len(samples) / SAMPLE_RATE:.1f} s")
        clipped = clipped_share(self.samples)
        self.level_note.setText(f"It clips: {100 * clipped:.1f} % of the samples are at full scale. Loudness is "
                                "evened out before conversion, but clipping cannot be undone: record a little quieter.")
        self.level_note.setVisible(clipped > CLIPPED_SHARE)
        self.wave.set_samples(self.samples)
        self.changed.emit()

    def take_dropped(self, path: str) -> None:
        self.load_file(path)

    # -- microphone ----------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.record_button.isEnabled():
            self.record_button.toggle()

    def _toggle_record(self, on: bool) -> None:
        if on:
            self.record_button.setText("■ Stop")
            self.name.setText("Recording… press Stop (or R) when done.")
            self.recorder.start(self.input.currentData(), self.max_seconds.value())
        else:
            self.record_button.setText("● Record")
            self.recorder.stop()

    def _record_failed(self, message: str) -> None:
        self.record_button.setChecked(False)
        self.ctx.show_error("Recording", message)

    def _recorded(self, samples: np.ndarray, rate: int) -> None:
        self.record_button.setChecked(False)
        self.meter.setValue(0)
        from core.engine import Audio

        job = self.ctx.worker.submit(lambda engine, job: engine.read_voice(Audio(samples, rate)), "Prepare recording")
        job.done.connect(lambda wav: self.set_samples(wav, "recording"))
        job.failed.connect(lambda msg: self._load_failed(msg))
        self._job = job


def gender_combo() -> QComboBox:
    combo = QComboBox()
    combo.addItem("Gender: estimate", None)
    combo.addItem("Gender: female", "female")
    combo.addItem("Gender: male", "male")
    combo.setToolTip("Which gender head of the model reads the reference's style")
    return combo


def gender_reading(style) -> tuple[str, bool]:
    """(what to tell the user about how the reference's gender was read, whether to warn)."""
    from core import audio

    if style.source == "voice" and style.f0_hz is not None:
        text = (f"Read as {style.gender}: the voice's median pitch is {style.f0_hz:.0f} Hz "
                f"(below {audio.MALE_BELOW_HZ:.0f} Hz reads as male).")
        if audio.near_register_line(style.f0_hz):
            return text + " That is close to the line: if the faces look wrong, choose the gender above.", True
        return text, False
    if style.source == "voice":
        return f"Read as {style.gender} by the model (no voiced speech to measure the pitch of).", True
    if style.source == "face":
        return f"Read as {style.gender} from the face.", False
    return f"The style is {style.gender}.", False


class GenderNote(QLabel):
    """Under a gender setting left on *estimate*: how the model read the reference's gender."""

    def __init__(self):
        super().__init__()
        self.setWordWrap(True)
        self.hide()

    def show_reading(self, style, chosen: str | None) -> None:
        if chosen is not None:  # the user decided; nothing to explain
            self.hide()
            return
        text, warn = gender_reading(style)
        self.setText(text)
        self.setStyleSheet(WARNING_STYLE if warn else "")
        self.show()


class StyleSlot(QWidget):
    """Holds a style sent from the latent panel (shown as the face it made there)."""

    def __init__(self):
        super().__init__()
        self.style = None
        self.view = ImageView("Send a style here from the Latent panel", size=128)
        self.caption = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)

    def set_style(self, style, image: QImage | None) -> None:
        self.style = style
        self.view.set_image(image)
        self.caption.setText(f"{style.domain} · seed {style.seed}" if style.seed is not None else style.source)

class ReferenceTabs(QTabWidget):
    """The reference a panel matches: a voice, a face, or a style from the latent panel, in tabs.
    `style_getter` turns the current tab into engine -> Style, so every panel makes its style the
    same way (E_A for a voice, E_I for a face, the latent style as it is)."""

    def __init__(self, ctx: AppContext, order: tuple[str, ...], face_title: str):
        super().__init__()
        self.ctx = ctx
        self.voice = VoiceSlot(ctx, "Reference voice", "voices")
        self.face = FaceSlot(ctx, face_title, "faces")
        self.style = StyleSlot()
        tabs = {"voice": (self.voice, "Voice"), "face": (self.face, "Face"), "style": (self.style, "Latent style")}
        for kind in order:
            self.addTab(*tabs[kind])

    @property
    def kind(self) -> str:
        return {self.voice: "voice", self.face: "face"}.get(self.currentWidget(), "style")

    def describe(self) -> str:
        return {"voice": self.voice.label, "face": Path(self.face.path).stem}.get(self.kind, "latent style")

    def receive_style(self, style, image: QImage | None) -> None:
        self.style.set_style(style, image)
        self.setCurrentWidget(self.style)

    def style_getter(self, gender: str | None, title: str):
        """engine -> Style for the current tab, or None after saying what is missing."""
        kind = self.kind
        if kind == "voice":
            if self.voice.samples is None:
                self.ctx.show_error(title, "Record or open a reference voice first.")
                return None
            from core.engine import Audio

            ref = Audio(self.voice.samples, SAMPLE_RATE)
            return lambda engine: engine.style_of_voice(ref, gender)
        if kind == "face":
            if not self.face.path:
                self.ctx.show_error(title, "Choose a reference face or avatar first.")
                return None
            path = self.face.path
            return lambda engine: engine.style_of_face(path, gender)
        if self.style.style is None:
            self.ctx.show_error(title, "Send a style here from the Latent panel first.")
            return None
        style = self.style.style
        return lambda engine: style
