"""Face panel: "a face that matches this voice" (and face -> face, and a style from the latent panel).

Up to four source faces are translated with one reference at once, as on the paper's demo page.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.face import IMAGE_EXTS

from .context import AppContext
from .widgets import (
    IMAGE_FILTER,
    FileDrops,
    GenderNote,
    ImageView,
    ReferenceTabs,
    gender_combo,
    pil_to_qimage,
    readable_image,
    samples_button,
    save_file_dialog,
)

MAX_SOURCES = 4


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


class SourceFaces(FileDrops, QGroupBox):
    """Up to four source faces: Add…, Samples, drag-and-drop; Remove drops the selected one."""
    drop_suffixes = IMAGE_EXTS
    drop_many = True

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
        samples = samples_button(ctx, self, "faces", self.add)
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
        image = readable_image(self.ctx, path)
        if image is None:
            return
        if self.list.count() >= MAX_SOURCES:
            self.list.takeItem(0)  # keep the newest four
        item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), Path(path).stem)
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

    def take_dropped(self, path: str) -> None:
        self.add(path)


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
        self.reference = ReferenceTabs(ctx, ("voice", "face", "style"), "Reference face")
        self.ref_voice, self.ref_face, self.ref_style = self.reference.voice, self.reference.face, self.reference.style
        self.gender = gender_combo()
        self.gender_note = GenderNote()
        self.convert_button = QPushButton("Make matching faces  (Ctrl+Enter)")
        self.convert_button.setDefault(True)
        self.convert_button.clicked.connect(self.convert)
        self.results = ResultGrid(ctx)

        middle = QVBoxLayout()
        middle.addWidget(QLabel("<b>Reference</b>: the voice (or face, or style) the new faces should match"))
        middle.addWidget(self.reference, 1)
        middle.addWidget(self.gender)
        middle.addWidget(self.gender_note)
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
        self.reference.receive_style(style, image)

    def convert(self) -> None:
        faces = self.sources.paths()
        label = f"Face from {self.reference.kind}"
        if not faces:
            self.ctx.show_error(label, "Add at least one source face (Add…, Samples, or drop an image).")
            return
        chosen = self.gender.currentData()
        get_style = self.reference.style_getter(chosen, label)
        if get_style is None:
            return

        def run(engine, job):
            style = get_style(engine)
            return engine.face_from_style(faces, style), style

        self.convert_button.setEnabled(False)
        self._job = self.ctx.worker.submit(run, label, timed=True)
        self._job.done.connect(lambda out: self._show(out, faces, chosen))
        self._job.failed.connect(lambda msg: self.ctx.show_error(label, msg))
        self._job.finished.connect(lambda: self.convert_button.setEnabled(True))

    def _show(self, out, faces: list[str], chosen: str | None) -> None:
        images, style = out
        self.gender_note.show_reading(style, chosen)
        self.results.set_images([(pil_to_qimage(img), f"{Path(src).stem}-matched") for img, src in zip(images, faces)])
