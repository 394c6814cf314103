"""Batch export tab: folders of sources x references -> images, voices and a manifest.

The same export as `xfavot export` (core.export). Re-running into the same output folder with the
same inputs resumes it: finished items are skipped.
"""
from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .context import AppContext

FOLDERS = (("faces", "Source faces", "Folder of face images to translate"),
           ("voices", "Source voices", "Folder of voice clips to convert"),
           ("ref_voices", "Reference voices", "Each voice gives every source face a matching face"),
           ("ref_faces", "Reference faces", "Each face gives every source voice a matching voice"))


class FolderField(QWidget):
    def __init__(self, ctx: AppContext, key: str, tip: str):
        super().__init__()
        self.ctx, self.key = ctx, key
        self.edit = QLineEdit(str(ctx.settings.value(f"export/{key}", "")))
        self.edit.setPlaceholderText(tip)
        self.edit.setToolTip(tip)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def browse(self) -> None:
        start = self.edit.text() or self.ctx.last_dir("export")
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        if path:
            self.edit.setText(path)
            self.ctx.remember_dir("export", path)

    def text(self) -> str:
        return self.edit.text().strip()

    def remember(self) -> None:
        self.ctx.settings.setValue(f"export/{self.key}", self.text())


class ExportPanel(QWidget):
    title = "Batch export"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self._job = None
        form = QFormLayout()
        self.fields = {}
        for key, label, tip in FOLDERS:
            self.fields[key] = FolderField(ctx, key, tip)
            form.addRow(label, self.fields[key])
        self.latents = QSpinBox()
        self.latents.setRange(0, 10_000)
        self.latents.setValue(int(ctx.settings.value("export/latents", 4)))
        self.latents.setToolTip("Latent-sampled references: each gives a matching face for every source face "
                                "and a matching voice for every source voice (avatar/voice pairs)")
        self.female, self.male = QCheckBox("female"), QCheckBox("male")
        self.female.setChecked(True)
        self.male.setChecked(True)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("first seed ")
        latent_row = QHBoxLayout()
        for w in (self.latents, QLabel("from"), self.female, self.male, self.seed):
            latent_row.addWidget(w)
        latent_row.addStretch(1)
        form.addRow("Latent samples", latent_row)
        self.format = QComboBox()
        self.format.addItems(["wav", "flac"])
        self.format.setCurrentText(str(ctx.settings.value("export/format", "wav")))
        form.addRow("Voice format", self.format)
        self.out = FolderField(ctx, "out", "Output folder (re-using one resumes its export)")
        form.addRow("Output folder", self.out)

        self.start_button = QPushButton("Start export")
        self.start_button.clicked.connect(self.convert)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m")
        self.state = QLabel("Choose sources, references and an output folder.")
        self.state.setWordWrap(True)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("Failed items and their reasons are listed here.")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.state)
        layout.addWidget(self.report, 1)

    @property
    def running(self) -> bool:
        return self._job is not None

    def _save_settings(self) -> None:
        for field in (*self.fields.values(), self.out):
            field.remember()
        self.ctx.settings.setValue("export/latents", self.latents.value())
        self.ctx.settings.setValue("export/format", self.format.currentText())

    def convert(self) -> None:
        if self.running:
            return
        from core.errors import UserError
        from core.export import ExportPlan, run_export

        if not self.out.text():
            self.ctx.show_error("Batch export", "Choose an output folder.")
            return
        self._save_settings()
        try:
            folders = {k: [f.text()] for k, f in self.fields.items()}
            domains = [d for d, box in (("female", self.female), ("male", self.male)) if box.isChecked()]
            plan = ExportPlan.from_paths(**folders, latents=self.latents.value(), latent_domains=domains,
                                         seed=self.seed.value(), voice_format=self.format.currentText())
        except UserError as exc:
            self.ctx.show_error("Batch export", str(exc))
            return
        out = self.out.text()

        def run(engine, job):
            return run_export(engine, plan, out, on_progress=lambda n, total, item: job.report(n, total, item.id),
                              should_cancel=lambda: job.cancelled)

        self.report.clear()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.state.setText("Exporting…")
        self._job = self.ctx.worker.submit(run, "Batch export", timed=True)
        self._job.progress.connect(self._progress)
        self._job.done.connect(self._done)
        self._job.failed.connect(lambda msg: (self.state.setText(msg), self.ctx.show_error("Batch export", msg)))
        self._job.finished.connect(self._finished)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.state.setText("Cancelling after the current item…")

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        self.state.setText(f"{done} of {total}: {what}")

    def _done(self, summary) -> None:
        self.progress.setMaximum(summary.total)
        self.progress.setValue(summary.done)
        self.state.setText(summary.text() + (". Start again with the same settings to resume." if summary.cancelled else "."))
        self.report.setPlainText("\n".join(f"{item}: {reason}" for item, reason in summary.failed))

    def _finished(self) -> None:
        self._job = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
