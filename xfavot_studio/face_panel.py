"""Face panel: "a face that matches this voice" (and face -> face, and a style from the latent panel).

Up to four source faces are translated with one reference at once, as on the paper's demo page.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMenu, QPushButton, QTabWidget, QToolButton, QVBoxLayout, QWidget)

from .context import AppContext
from .widgets import (IMAGE_FILTER, IMAGE_SUFFIXES, SAMPLE_RATE, FaceSlot, ImageView, VoiceSlot, dropped_file,
                      pil_to_qimage, save_file_dialog)

MAX_SOURCES = 4


def gender_combo() -> QComboBox:
    combo = QComboBox()
    combo.addItem("Gender: estimate", None)
    combo.addItem("Gender: female", "female")
    combo.addItem("Gender: male", "male")
    combo.setToolTip("Which gender head of the model reads the reference's style")
    return combo


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


class HintList(QListWidget):
    """A list that says what to do while it is empty."""

    def __init__(self, hint: str):
        super().__init__()
        self.hint = hint

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.count() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.viewport().rect(), Qt.AlignCenter | Qt.TextWordWrap, self.hint)
            painter.end()


class SourceFaces(QGroupBox):
    """Up to four source faces: Add…, Samples, drag-and-drop; Delete removes the selected one."""

    def __init__(self, ctx: AppContext):
        super().__init__(f"Source faces (up to {MAX_SOURCES})")
        self.ctx = ctx
        self.list = HintList("Drop face images here,\nor use Add… / Samples")
        self.list.setViewMode(QListWidget.IconMode)
        self.list.setIconSize(QSize(96, 96))
        self.list.setResizeMode(QListWidget.Adjust)
        self.list.setMinimumWidth(230)
        add = QPushButton("Add…")
        add.clicked.connect(self.choose)
        samples = QToolButton()
        samples.setText("Samples")
        samples.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self)
        for sample in ctx.sample_files("faces"):
            menu.addAction(QIcon(str(sample)), sample.stem, lambda p=sample: self.add(str(p)))
        samples.setMenu(menu)
        remove = QPushButton("Remove")
        remove.clicked.connect(self.remove_selected)
        row = QHBoxLayout()
        for w in (add, samples, remove):
            row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        self.setAcceptDrops(True)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def add(self, path: str) -> None:
        if QImage(path).isNull():
            self.ctx.show_error("Cannot open image", f"{Path(path).name} is not an image this app can read.")
            return
        if self.list.count() >= MAX_SOURCES:
            self.list.takeItem(0)  # keep the newest four
        item = QListWidgetItem(QIcon(path), Path(path).stem)
        item.setData(Qt.UserRole, path)
        item.setToolTip(path)
        self.list.addItem(item)
        self.ctx.remember_dir("faces", path)

    def choose(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Source faces", self.ctx.last_dir("faces"), IMAGE_FILTER)
        for path in paths[:MAX_SOURCES]:
            self.add(path)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))

    def dragEnterEvent(self, event) -> None:
        if dropped_file(event, IMAGE_SUFFIXES):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES:
                self.add(url.toLocalFile())


class ResultGrid(QGroupBox):
    """The translated faces, each with its own Save button."""

    def __init__(self, ctx: AppContext, title: str = "Results"):
        super().__init__(title)
        self.ctx = ctx
        self.images: list[tuple[QImage, str]] = []
        self.grid = QGridLayout(self)
        self.hint = QLabel("Results appear here.")
        self.grid.addWidget(self.hint, 0, 0)

    def set_images(self, images: list[tuple[QImage, str]]) -> None:
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.images = images
        columns = 2 if len(images) > 1 else 1
        for i, (image, name) in enumerate(images):
            cell = QWidget()
            layout = QVBoxLayout(cell)
            view = ImageView("", size=160)
            view.set_image(image)
            save = QPushButton(f"Save {name}…")
            save.clicked.connect(lambda _=False, img=image, n=name: self.save(img, n))
            layout.addWidget(view, 1)
            layout.addWidget(save)
            self.grid.addWidget(cell, i // columns, i % columns)

    def save(self, image: QImage, name: str) -> None:
        path = save_file_dialog(self.ctx, self, "results", "Save face", f"{name}.png", "PNG image (*.png)")
        if path and not image.save(path, "PNG"):
            self.ctx.show_error("Save failed", f"Could not write {path}.")


class FacePanel(QWidget):
    title = "Face from voice"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.sources = SourceFaces(ctx)
        self.ref_voice = VoiceSlot(ctx, "Reference voice", "voices")
        self.ref_face = FaceSlot(ctx, "Reference face", "faces")
        self.ref_style = StyleSlot()
        self.reference = QTabWidget()
        self.reference.addTab(self.ref_voice, "Voice")
        self.reference.addTab(self.ref_face, "Face")
        self.reference.addTab(self.ref_style, "Latent style")
        self.gender = gender_combo()
        self.convert_button = QPushButton("Make matching faces  (Ctrl+Enter)")
        self.convert_button.setDefault(True)
        self.convert_button.clicked.connect(self.convert)
        self.results = ResultGrid(ctx)

        middle = QVBoxLayout()
        middle.addWidget(QLabel("<b>Reference</b>: the voice (or face, or style) the new faces should match"))
        middle.addWidget(self.reference, 1)
        middle.addWidget(self.gender)
        middle.addWidget(self.convert_button)
        layout = QHBoxLayout(self)
        layout.addWidget(self.sources, 2)
        layout.addLayout(middle, 3)
        layout.addWidget(self.results, 3)

    def record(self) -> None:
        self.reference.setCurrentWidget(self.ref_voice)
        self.ref_voice.toggle_recording()

    def play(self) -> None:
        self.ref_voice.play_button.play()

    def receive_style(self, style, image: QImage | None) -> None:
        self.ref_style.set_style(style, image)
        self.reference.setCurrentWidget(self.ref_style)

    def convert(self) -> None:
        faces = self.sources.paths()
        if not faces:
            self.ctx.show_error("Face from voice", "Add at least one source face (Add…, Samples, or drop an image).")
            return
        gender = self.gender.currentData()
        mode = self.reference.currentWidget()
        if mode is self.ref_voice:
            if self.ref_voice.samples is None:
                self.ctx.show_error("Face from voice", "Record or open a reference voice first.")
                return
            from core.engine import Audio

            ref = Audio(self.ref_voice.samples, SAMPLE_RATE)
            fn, label = (lambda e, job: e.face_from_voice(faces, ref, gender)), "Face from voice"
        elif mode is self.ref_face:
            if not self.ref_face.path:
                self.ctx.show_error("Face from face", "Choose a reference face first.")
                return
            ref_path = self.ref_face.path
            fn, label = (lambda e, job: e.face_from_face(faces, ref_path, gender)), "Face from face"
        else:
            if self.ref_style.style is None:
                self.ctx.show_error("Face from style", "Send a style here from the Latent panel first.")
                return
            style = self.ref_style.style
            fn, label = (lambda e, job: e.face_from_style(faces, style)), "Face from style"
        self.convert_button.setEnabled(False)
        self._job = self.ctx.worker.submit(fn, label)
        self._job.done.connect(lambda images: self._show(images, faces))
        self._job.failed.connect(lambda msg: self.ctx.show_error(label, msg))
        self._job.finished.connect(lambda: self.convert_button.setEnabled(True))

    def _show(self, images, faces: list[str]) -> None:
        self.results.set_images([(pil_to_qimage(img), f"{Path(src).stem}-matched") for img, src in zip(images, faces)])
