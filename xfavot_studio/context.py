"""What every panel shares: the engine worker, settings, sample files and the way errors are shown."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox, QWidget

from . import settings as app_settings
from .worker import EngineWorker


@dataclass
class AppContext:
    worker: EngineWorker
    settings: QSettings
    samples: Path
    window: QWidget | None = None
    errors: list[str] = field(default_factory=list)   # every message shown, newest last
    error_box: QMessageBox | None = None

    def show_error(self, title: str, message: str) -> None:
        """A readable, non-blocking message box (the window keeps working behind it)."""
        self.errors.append(message)
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self.window)
        box.open()
        self.error_box = box

    def status(self, text: str, ms: int = 5000) -> None:
        if self.window is not None and hasattr(self.window, "statusBar"):
            self.window.statusBar().showMessage(text, ms)

    def last_dir(self, key: str) -> str:
        return app_settings.get(self.settings, f"folders/{key}", str(Path.home()))

    def remember_dir(self, key: str, path: str | Path) -> None:
        path = Path(path)
        self.settings.setValue(f"folders/{key}", str(path if path.is_dir() else path.parent))

    def sample_files(self, kind: str) -> list[Path]:
        folder = self.samples / kind
        return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
