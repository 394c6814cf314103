"""`xfavot-studio`: the desktop app.

    xfavot-studio [--checkpoint FILE] [--device auto|cpu|cuda] [--screenshot DIR]

--screenshot fills every panel from the bundled samples, runs each one once on the model, saves
one PNG per panel into DIR and exits (works offscreen: QT_QPA_PLATFORM=offscreen).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QElapsedTimer, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from core.config import DEVICE_CHOICES

from . import settings as app_settings


def make_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        # high-DPI: Qt 6 scales by default; pass fractional factors (125 %, 150 %) through unrounded
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
    QCoreApplication.setOrganizationName(app_settings.ORGANIZATION)
    QCoreApplication.setApplicationName(app_settings.APPLICATION)
    return app


def wait_until(condition, timeout_ms: int = 120_000) -> bool:
    """Process events until condition() holds (for the screenshot mode)."""
    timer = QElapsedTimer()
    timer.start()
    while not condition():
        if timer.elapsed() > timeout_ms:
            return False
        QApplication.processEvents()
        QApplication.instance().thread().msleep(10)
    return True


def take_screenshots(window, out_dir: Path) -> list[Path]:
    """Every panel with real inputs and outputs, each grabbed to a PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    window.resize(1280, 800)
    def idle() -> bool:
        if not window.worker.is_idle():
            return False
        for _ in range(3):  # deliver the last job's result signals
            QApplication.processEvents()
        return window.worker.is_idle()

    wait_until(lambda: window.model_info is not None or window.banner.isVisible())
    faces = window.ctx.sample_files("faces")
    voices = window.ctx.sample_files("voices")
    if window.model_info is not None and faces and voices:
        for f in faces[:4]:
            window.face.sources.add(str(f))
        window.face.ref_voice.load_file(str(voices[1]))
        window.voice.source.load_file(str(voices[0]))
        window.voice.ref_face.set_path(str(faces[6]))
        window.latent.source_face.set_path(str(faces[0]))
        window.latent.source_voice.load_file(str(voices[0]))
        wait_until(idle)
        window.face.convert()
        window.voice.convert()
        window.latent.count.setValue(8)
        window.latent.convert()
        wait_until(idle)
        if len(window.latent.cells) >= 2:
            window.latent._pick("A", window.latent.cells[0])
            window.latent._pick("B", window.latent.cells[1])
            window.latent.slider.setValue(50)
        wait_until(idle)
        # a short export and a few fine-tuning steps, so those tabs show real progress
        scratch = Path(tempfile.mkdtemp(prefix="xfavot-screens-"))
        for f in faces:
            gender = "female" if "female" in f.name else "male"
            (scratch / "avatars" / gender).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, scratch / "avatars" / gender / f.name)
        (scratch / "faces").mkdir()
        for f in faces[:2]:
            shutil.copy(f, scratch / "faces" / f.name)
        window.export.fields["faces"].edit.setText(str(scratch / "faces"))
        window.export.latents.setValue(2)
        window.export.out.edit.setText(str(scratch / "export"))
        window.export.convert()
        wait_until(lambda: not window.export.running)
        panel = window.training
        wait_until(lambda: panel.base.count() > 0)
        panel.avatars.edit.setText(str(scratch / "avatars"))
        panel.steps.setValue(6)
        panel.batch.setValue(2)
        panel.sample_every.setValue(3)
        panel.name.setText("screenshot-demo")
        panel.start()
        wait_until(lambda: panel.run is not None and not panel.running, timeout_ms=600_000)
        wait_until(idle)
        _start_live_on_a_file(window, voices[0], faces[6])
    saved = []
    for i, panel in enumerate(window.panels):
        window.tabs.setCurrentWidget(panel)
        for _ in range(5):
            QApplication.processEvents()
        path = out_dir / f"{i + 1}-{panel.title.lower().replace(' ', '-')}.png"
        window.grab().save(str(path))
        saved.append(path)
    window.live.stop()
    return saved


def _start_live_on_a_file(window, voice: Path, avatar: Path) -> None:
    """The Live tab running on a bundled voice played as if from a microphone (a file-fed stream
    stands in for the sound card), so its avatar, meters and latency readout show real values."""
    from core.audio import load_audio

    from .live import FileStream

    samples = load_audio(voice)
    window.live.stream_factory = lambda inp, out, rate, block, callback, finished: FileStream(
        samples, rate, block, callback, finished)
    window.live.reference.setCurrentWidget(window.live.reference.face)
    window.live.reference.face.set_path(str(avatar))
    window.live.start_button.setChecked(True)
    wait_until(lambda: window.live.session is not None and window.live.session.stats.blocks >= 15, timeout_ms=60_000)
    window.live._refresh()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfavot-studio", description="XFaVoT Studio: faces and voices that belong together")
    parser.add_argument("--checkpoint", help="model to load (default: the last one used, else the embedded model)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, help="where the model runs (default: last used)")
    parser.add_argument("--screenshot", metavar="DIR", help="render each panel to DIR/*.png and exit")
    args = parser.parse_args(argv)
    if args.screenshot and not os.environ.get("XFAVOT_HOME"):
        # screenshots start from a clean state and leave the user's settings and library alone
        os.environ["XFAVOT_HOME"] = tempfile.mkdtemp(prefix="xfavot-home-")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        handlers=[logging.FileHandler(app_settings.data_dir() / "xfavot-studio.log"),
                                  logging.StreamHandler()])
    app = make_app()
    from .main_window import MainWindow

    window = MainWindow(args.checkpoint, args.device)
    window.show()
    if args.screenshot:
        for path in take_screenshots(window, Path(args.screenshot)):
            print(path)
        window.close()
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
