"""The main window: panels in tabs, the model and device in the toolbar, jobs in the status bar."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.config import DEVICE_CHOICES, VOCODER_CHOICES

from . import __version__, display
from . import settings as app_settings
from .context import AppContext
from .export_panel import ExportPanel
from .face_panel import FacePanel
from .latent_panel import LatentPanel
from .library import ModelLibrary
from .library_panel import LibraryPanel
from .live_panel import LivePanel
from .training_panel import TrainingPanel
from .voice_panel import VoicePanel
from .worker import EngineWorker


class MainWindow(QMainWindow):
    def __init__(self, checkpoint: str | None = None, device: str | None = None, worker: EngineWorker | None = None,
                 live_stream_factory=None):
        """live_stream_factory: a stand-in for the sound card in the Live tab (tests, screenshots)."""
        super().__init__()
        from core.engine import RESOURCES

        self.setWindowTitle(f"XFaVoT Studio {__version__}")
        self.setWindowIcon(QIcon(str(RESOURCES / "icons" / "xfavot-studio.svg")))
        self.settings = app_settings.app_settings()
        self.worker = worker or EngineWorker()
        self.ctx = AppContext(self.worker, self.settings, RESOURCES / "samples", window=self)
        home = app_settings.data_dir()
        self.library = ModelLibrary(home / "models")
        self.model_info = None
        self._loaded_with: dict[QComboBox, str] = {}  # device and vocoder of the loaded model

        self.face = FacePanel(self.ctx)
        self.voice = VoicePanel(self.ctx)
        self.live = LivePanel(self.ctx, live_stream_factory)
        self.latent = LatentPanel(self.ctx)
        self.export = ExportPanel(self.ctx)
        self.training = TrainingPanel(self.ctx, self.library, home / "runs")
        self.models = LibraryPanel(self.ctx, self.library)
        self.panels = (self.face, self.voice, self.live, self.latent, self.export, self.training, self.models)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
        self.tabs.setCurrentIndex(app_settings.get(self.settings, "window/tab", 0))
        self.tabs.currentChanged.connect(lambda i: self.settings.setValue("window/tab", i))

        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #fff4e5; color: #5c3b00; padding: 6px; }")
        self.banner.hide()
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(body)

        self._build_toolbar(device)
        self._build_status_bar()
        self._build_menu_and_shortcuts()

        self.latent.send_style.connect(self._send_style)
        self.models.activate.connect(lambda path: self.load_model(path))
        self.models.listed.connect(self.training.set_models)
        self.training.model_added.connect(self._model_added)
        self.worker.busy.connect(self._busy)
        self.worker.idle.connect(self._idle)
        self.worker.timing.connect(self._timing)

        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        self.load_model(checkpoint or self.settings.value("model/path") or None)

    # -- chrome --------------------------------------------------------------------------------
    def _build_toolbar(self, device: str | None) -> None:
        bar = QToolBar("Model and device")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        self.model_label = QLabel("Model: loading…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_combo.setCurrentText(device or str(self.settings.value("engine/device", "auto")))
        self.device_combo.setToolTip("Where the model runs: auto picks the GPU when there is one")
        self.device_combo.currentTextChanged.connect(lambda v: self._engine_setting_changed("engine/device", v))
        self.vocoder_combo = QComboBox()
        self.vocoder_combo.addItems(VOCODER_CHOICES)
        self.vocoder_combo.setCurrentText(str(self.settings.value("engine/vocoder", "auto")))
        self.vocoder_combo.setToolTip("How mel spectrograms become sound: the model's neural vocoder, Griffin-Lim, "
                                      "or auto (the one the model's recipe measured to sound closer to real speech)")
        self.vocoder_combo.currentTextChanged.connect(lambda v: self._engine_setting_changed("engine/vocoder", v))
        self.device_label = QLabel("")
        bar.addWidget(self.model_label)
        bar.addSeparator()
        bar.addWidget(QLabel(" Device: "))
        bar.addWidget(self.device_combo)
        bar.addWidget(QLabel("  Vocoder: "))
        bar.addWidget(self.vocoder_combo)
        bar.addWidget(QLabel("  "))
        bar.addWidget(self.device_label)
        self.addToolBar(bar)

    def _build_status_bar(self) -> None:
        self.job_label = QLabel("")
        self.job_bar = QProgressBar()
        self.job_bar.setRange(0, 0)  # busy indicator
        self.job_bar.setMaximumWidth(120)
        self.job_bar.hide()
        self.timing_label = QLabel("Last inference: –")
        status = self.statusBar()
        status.addPermanentWidget(self.job_label)
        status.addPermanentWidget(self.job_bar)
        status.addPermanentWidget(self.timing_label)

    def _build_menu_and_shortcuts(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        imp = QAction("Import model…", self)
        imp.triggered.connect(self.models.import_dialog)
        file_menu.addAction(imp)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("About XFaVoT Studio", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "About", f"XFaVoT Studio {__version__}\nCross-modal face and voice style transfer "
                           "(Takahashi, Singh, Mitsufuji)."))
        help_menu.addAction(about)
        for keys, method in (("R", "record"), ("Space", "play"), ("Ctrl+Return", "convert"), ("Ctrl+Enter", "convert"),
                             ("Ctrl+L", "toggle_live")):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(lambda m=method: self._shortcut(m))

    def _shortcut(self, method: str) -> None:
        """R / Space / Ctrl+Enter act on the current tab, when it has that action; Ctrl+L starts and
        stops live conversion from any tab."""
        if method == "toggle_live":
            self.tabs.setCurrentWidget(self.live)
            self.live.run_action()
            return
        action = getattr(self.tabs.currentWidget(), method, None)
        if action is not None:
            action()

    # -- model and device ----------------------------------------------------------------------
    def load_model(self, path: str | None) -> None:
        device, vocoder = self.device_combo.currentText(), self.vocoder_combo.currentText()
        self.model_label.setText("Model: loading…")

        def run(engine, job):
            info = engine.load(path, device, vocoder)
            engine.warm_up()  # here, while the label says loading, not in the middle of a later task
            return info, engine.domains, display.device_summary(engine)

        job = self.worker.submit(run, "Load model")
        job.done.connect(self._model_loaded)
        job.failed.connect(self._model_failed)
        self._load_job = job

    def _model_loaded(self, result) -> None:
        info, domains, device = result
        self.model_info = info
        self.settings.setValue("model/path", info.path)
        self._loaded_with = {combo: combo.currentText() for combo in (self.device_combo, self.vocoder_combo)}
        name = info.meta.get("name") or Path(info.path).stem
        self.model_label.setText(f"Model: <b>{name}</b> ({info.preset}, {info.steps} steps, {info.vocoder})")
        self.model_label.setToolTip(info.path)
        self.device_label.setText(device)
        self.banner.hide()
        self.latent.set_domains(domains)
        self.models.set_active(info.path)
        self.training.follow_active(info.path)

    def _model_failed(self, message: str) -> None:
        if self.model_info is not None:  # the engine still holds the previous model: keep using it
            self.ctx.show_error("Cannot load the model", f"{message} The previous model stays active.")
            for combo, text in self._loaded_with.items():  # back to what the loaded model runs with
                combo.blockSignals(True)
                combo.setCurrentText(text)
                combo.blockSignals(False)
            return
        self.model_label.setText("Model: none")
        self.banner.setText(f"No model is loaded: {message}  Choose one in the Models tab, or import a file.")
        self.banner.show()

    def _engine_setting_changed(self, key: str, value: str) -> None:
        """Device or vocoder: remembered, and the model reloaded with it."""
        self.settings.setValue(key, value)
        if self.model_info is not None:
            self.load_model(self.model_info.path)

    def _model_added(self, entry) -> None:
        self.models.refresh()
        self.ctx.status(f"New model {entry.name} is in the library")

    # -- status --------------------------------------------------------------------------------
    def _busy(self, label: str) -> None:
        self.job_label.setText(f"{label}…")
        self.job_bar.show()

    def _idle(self) -> None:
        if self.worker.is_idle():
            self.job_label.setText("")
            self.job_bar.hide()

    def _timing(self, label: str, seconds: float) -> None:
        self.timing_label.setText(f"Last inference: {label} {seconds * 1000:.0f} ms")

    def _send_style(self, where: str, style, image) -> None:
        panel = self.face if where == "face" else self.voice
        panel.receive_style(style, image)
        self.tabs.setCurrentWidget(panel)

    # -- closing -------------------------------------------------------------------------------
    def confirm(self, title: str, text: str) -> bool:
        return QMessageBox.question(self, title, text) == QMessageBox.Yes

    def closeEvent(self, event) -> None:
        if self.training.running:
            if not self.confirm("Training is running",
                                "Stop training and quit? A checkpoint is saved now and the run can be resumed "
                                "from the Training tab next time."):
                event.ignore()
                return
            self.statusBar().showMessage("Stopping training and saving a checkpoint…")
            self.training.stop_and_wait()
        if self.export.running:
            self.export.cancel()
        self.live.shutdown()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.worker.shutdown()
        super().closeEvent(event)
