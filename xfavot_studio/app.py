"""`xfavot-studio`: the desktop app. Until the full GUI lands this is a start window that loads
the embedded default model through the Engine on a worker thread and says what it found."""
from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QVBoxLayout, QWidget

from xfavot_studio import __version__


class _LoadSignals(QObject):
    done = Signal(str)


class _LoadModel(QRunnable):
    """Loads the default model off the GUI thread; reports a readable line either way."""

    def __init__(self, checkpoint: str | None):
        super().__init__()
        self.checkpoint = checkpoint
        self.signals = _LoadSignals()

    def run(self) -> None:
        from core.engine import Engine
        from core.errors import UserError

        try:
            info = Engine().load(self.checkpoint)
            text = (f"Model: {info.preset} preset, {len(info.speakers)} speakers, {info.steps} training steps.\n"
                    f"Vocoder: {info.vocoder}")
        except UserError as exc:
            text = f"No model loaded: {exc}"
        except Exception as exc:  # the window must never die on a load problem
            text = f"No model loaded: unexpected {type(exc).__name__}: {exc}"
        self.signals.done.emit(text)


class StartWindow(QMainWindow):
    def __init__(self, checkpoint: str | None = None):
        super().__init__()
        self.setWindowTitle(f"XFaVoT Studio {__version__}")
        self.resize(720, 360)
        title = QLabel("<h2>XFaVoT Studio</h2><p>Faces and voices that belong together.</p>")
        self.status = QLabel("Loading model…")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout = QVBoxLayout()
        layout.addWidget(title)
        layout.addWidget(self.status)
        layout.addStretch(1)
        body = QWidget()
        body.setLayout(layout)
        self.setCentralWidget(body)
        job = _LoadModel(checkpoint)
        job.signals.done.connect(self.status.setText)
        self._job = job
        QThreadPool.globalInstance().start(job)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfavot-studio")
    parser.add_argument("--checkpoint", help="model to load (default: the embedded model)")
    parser.add_argument("--screenshot", metavar="PNG", help="render the window offscreen to PNG and exit")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = StartWindow(args.checkpoint)
    window.show()
    if args.screenshot:
        QThreadPool.globalInstance().waitForDone(60_000)
        for _ in range(3):  # deliver the worker's signal, then let the layout settle
            app.processEvents()
        window.grab().save(args.screenshot)
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
