"""The desktop app's start window (the full GUI is its own issue)."""
import pytest

pytest.importorskip("PySide6")

from xfavot_studio.app import StartWindow  # noqa: E402


def test_start_window_reports_a_missing_default_model(qtbot, tmp_path, monkeypatch):
    import core.engine

    monkeypatch.setattr(core.engine, "DEFAULT_CHECKPOINT", tmp_path / "missing.safetensors")
    window = StartWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: "No model loaded" in window.status.text(), timeout=30_000)
    assert "xfavot init" in window.status.text()


def test_start_window_loads_a_model_off_the_gui_thread(qtbot, tiny_checkpoint):
    window = StartWindow(str(tiny_checkpoint))
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: "tiny preset" in window.status.text(), timeout=30_000)
    assert "Griffin-Lim" in window.status.text()
