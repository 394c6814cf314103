"""Model library tab: the embedded default model and the user's models; switch, import, delete."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.checkpoint import ModelRecord

from .context import AppContext
from .library import ModelLibrary

COLUMNS = ("Name", "Preset", "Domains", "Speakers", "Steps", "Vocoder", "Training data", "Created")


class LibraryPanel(QWidget):
    title = "Models"
    activate = Signal(str)          # checkpoint path to load
    listed = Signal(list)           # the entries, after each refresh

    def __init__(self, ctx: AppContext, library: ModelLibrary):
        super().__init__()
        self.ctx, self.library = ctx, library
        self.entries: list[ModelRecord] = []
        self.active_path = ""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(COLUMNS.index("Training data"), QHeaderView.Stretch)
        self.table.verticalHeader().hide()
        self.table.doubleClicked.connect(self.use_selected)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        use = QPushButton("Use this model")
        use.clicked.connect(self.use_selected)
        imp = QPushButton("Import…")
        imp.clicked.connect(self.import_dialog)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        row = QHBoxLayout()
        for w in (use, imp, self.delete_button, refresh):
            row.addWidget(w)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"User models are kept in {library.root}"))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.problems)
        layout.addLayout(row)
        # confirm(title, text) -> bool; a dialog in the app, replaced in tests
        self.confirm = lambda title, text: QMessageBox.question(self, title, text) == QMessageBox.Yes
        self.refresh()

    def convert(self) -> None:
        self.use_selected()

    def refresh(self) -> None:
        active = self.active_path
        job = self.ctx.worker.submit(lambda e, job: self.library.entries(active), "List models")
        job.done.connect(self._show)
        job.failed.connect(lambda msg: self.ctx.show_error("Model library", msg))
        self._job = job

    def _show(self, result) -> None:
        self.entries, problems = result
        self.problems.setText("Unreadable files: " + "; ".join(problems) if problems else "")
        self.table.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            name = ("● " if e.path == self.active_path else "") + e.name + (" (embedded)" if e.builtin else "")
            values = (name, e.preset, f"{e.domains} ({', '.join(e.genders)} + {len(e.speakers)} speakers)",
                      str(len(e.speakers)), str(e.steps), e.vocoder, e.data, e.created)
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(e.path if c == 0 else text)
                if e.path == self.active_path:
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)
        self.listed.emit(self.entries)

    def set_active(self, path: str) -> None:
        self.active_path = path
        self.refresh()

    def selected(self) -> ModelRecord | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.activate.emit(entry.path)

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model", self.ctx.last_dir("models"),
                                              "XFaVoT models (*.safetensors);;All files (*)")
        if path:
            self.ctx.remember_dir("models", path)
            self.import_file(path)

    def import_file(self, path: str) -> None:
        job = self.ctx.worker.submit(lambda e, job: self.library.import_file(path), "Import model")
        job.done.connect(lambda entry: (self.ctx.status(f"Imported {entry.name}"), self.refresh()))
        job.failed.connect(lambda msg: self.ctx.show_error("Import failed", msg))
        self._import_job = job

    def delete_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        if entry.builtin:
            self.ctx.show_error("Delete", "The embedded default model cannot be deleted.")
            return
        if entry.path == self.active_path:
            self.ctx.show_error("Delete", "This model is in use; switch to another model first.")
            return
        if not self.confirm("Delete model", f"Delete {entry.name}? The file is removed from the library."):
            return
        job = self.ctx.worker.submit(lambda e, job: self.library.delete(entry), "Delete model")
        job.done.connect(lambda _: self.refresh())
        job.failed.connect(lambda msg: self.ctx.show_error("Delete failed", msg))
        self._delete_job = job

    def row_of(self, path: str) -> int:
        return next((i for i, e in enumerate(self.entries) if e.path == path), -1)

    def select_path(self, path: str) -> None:
        row = self.row_of(path)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollToItem(self.table.item(row, 0), QAbstractItemView.EnsureVisible)
        self.table.setFocus(Qt.OtherFocusReason)
