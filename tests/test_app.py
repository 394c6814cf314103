"""The desktop app, driven end to end with pytest-qt on a tiny random model (offscreen)."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from conftest import SR, speech_like  # noqa: E402
from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from core.engine import RESOURCES, Audio, Engine  # noqa: E402
from xfavot_studio import audio_io  # noqa: E402
from xfavot_studio.main_window import MainWindow  # noqa: E402
from xfavot_studio.worker import EngineWorker  # noqa: E402

SAMPLES = RESOURCES / "samples"
WAIT = 60_000


def open_window(qtbot, checkpoint, home, align_faces=False):
    window = MainWindow(str(checkpoint), "cpu", worker=EngineWorker(Engine(batch_size=4, align_faces=align_faces)))
    qtbot.addWidget(window)
    window.confirm = lambda title, text: True  # closing at teardown must not wait on a dialog
    window.show()
    qtbot.waitUntil(lambda: window.model_info is not None or window.banner.isVisible(), timeout=WAIT)
    return window


@pytest.fixture()
def window(qtbot, tiny_checkpoint, home):
    return open_window(qtbot, tiny_checkpoint, home)


def wait_idle(qtbot, window):
    qtbot.waitUntil(window.worker.is_idle, timeout=WAIT)
    qtbot.wait(20)  # let the last job's result signals arrive


# the longest the GUI thread may go without turning its event loop while the engine or a trainer
# works on other threads (they share the GIL and, here, two cores with the test itself)
MAX_GUI_STALL = 0.5


class EventLoopProbe:
    """Counts a 10 ms QTimer's ticks while a block runs: the longest gap is how long the GUI
    thread was unable to repaint or take input."""

    def __enter__(self):
        self.ticks, self.timer = [], QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timer.stop()
        self.elapsed = time.perf_counter() - self.started
        self.max_gap = float(np.diff([self.started] + self.ticks + [self.started + self.elapsed]).max())

    def check(self, max_gap: float = MAX_GUI_STALL, min_seconds: float = 0.3) -> None:
        assert self.elapsed > min_seconds, "the work was too short to tell anything"
        gaps = np.diff([self.started] + self.ticks)
        where = [(round(float(t - self.started), 2), round(float(g), 3)) for t, g in zip(self.ticks, gaps) if g > 0.1]
        assert self.max_gap < max_gap, f"the GUI thread stalled for {self.max_gap:.3f} s (at s, gap: {where})"


def drop_file(widget, path) -> None:
    """A file dropped from a file manager onto the widget."""
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    widget.dropEvent(QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))


def faces():
    return sorted((SAMPLES / "faces").glob("*.png"))


def voices():
    return sorted((SAMPLES / "voices").glob("*.flac"))


def test_main_window_opens_with_every_panel(window):
    assert window.model_info.preset == "tiny"
    assert "tiny" in window.model_label.text()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Face from voice", "Voice from face", "Live", "Latent", "Batch export", "Training", "Models"]
    assert window.device_label.text().startswith("CPU")
    assert not window.grab().isNull()


def test_missing_model_shows_a_banner_not_a_traceback(qtbot, home, tmp_path):
    window = open_window(qtbot, tmp_path / "nowhere.safetensors", home)
    assert window.banner.isVisible()
    assert "not found" in window.banner.text() or "missing" in window.banner.text()
    window.face.sources.add(str(faces()[0]))
    window.face.ref_face.set_path(str(faces()[1]))
    window.face.reference.setCurrentWidget(window.face.ref_face)
    window.face.convert()
    wait_idle(qtbot, window)
    assert "no model is loaded" in window.ctx.errors[-1]


def test_face_panel_voice_reference_on_several_sources(qtbot, window, media):
    panel = window.face
    for f in faces()[:3]:
        panel.sources.add(str(f))
    panel.ref_voice.load_file(str(media / "voice.wav"))
    wait_idle(qtbot, window)
    assert panel.ref_voice.samples is not None and abs(panel.ref_voice.samples.size - 2 * SR) < 10
    assert window.timing_label.text() == "Last inference: –"  # loading and reading are not inference
    with qtbot.waitSignal(window.worker.timing, timeout=WAIT):
        panel.convert()
    wait_idle(qtbot, window)
    images = [img for img, _ in panel.results.images]
    assert len(images) == 3 and all((img.width(), img.height()) == (64, 64) for img in images)
    assert "Face from voice" in window.timing_label.text()
    # left on "estimate", the panel says how the voice was read (the test voice: 150 Hz, near the line)
    assert panel.gender_note.isVisibleTo(panel) and "Hz" in panel.gender_note.text()
    assert "close to the line" in panel.gender_note.text()
    panel.gender.setCurrentIndex(panel.gender.findData("female"))
    panel.convert()
    wait_idle(qtbot, window)
    assert not panel.gender_note.isVisibleTo(panel)  # the user chose: nothing to explain
    panel.gender.setCurrentIndex(0)

    # face -> face, and a style sent from the latent panel
    panel.ref_face.set_path(str(faces()[5]))
    panel.reference.setCurrentWidget(panel.ref_face)
    panel.convert()
    wait_idle(qtbot, window)
    assert len(panel.results.images) == 3


def test_face_panel_save_png(qtbot, window, media, tmp_path, monkeypatch):
    panel = window.face
    panel.sources.add(str(faces()[0]))
    panel.ref_voice.load_file(str(media / "voice.wav"))
    wait_idle(qtbot, window)
    panel.convert()
    wait_idle(qtbot, window)
    assert not window.ctx.errors, window.ctx.errors
    target = tmp_path / "saved.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    image, name = panel.results.images[0]
    panel.results.save(image, name)
    from PIL import Image

    assert Image.open(target).size == (64, 64)


def test_voice_panel_face_and_voice_references(qtbot, window, media, tmp_path, monkeypatch):
    panel = window.voice
    panel.source.load_file(str(media / "voice.wav"))
    panel.ref_face.set_path(str(faces()[2]))
    wait_idle(qtbot, window)
    panel.convert()
    wait_idle(qtbot, window)
    assert panel.result is not None and abs(panel.result.size - 2 * SR) <= 300
    assert panel.result_mel.image() is not None and panel.source_mel.image() is not None
    assert panel.gender_note.text().endswith("from the face.")
    assert panel.result_wave.samples().size == panel.result.size

    panel.ref_voice.load_file(str(voices()[1]))
    panel.reference.setCurrentWidget(panel.ref_voice)
    wait_idle(qtbot, window)
    before = panel.result.copy()
    panel.convert()
    wait_idle(qtbot, window)
    assert panel.result.size == before.size and not np.allclose(panel.result, before)

    target = tmp_path / "converted.flac"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    panel.save()
    wait_idle(qtbot, window)
    wav, rate = sf.read(target)
    assert rate == SR and wav.size == panel.result.size


def test_latent_panel_sample_lock_reroll_mix_and_send(qtbot, window):
    panel = window.latent
    assert panel.domain.count() == 2 + len(window.model_info.speakers)
    panel.source_face.set_path(str(faces()[0]))
    panel.source_voice.load_file(str(voices()[0]))
    panel.count.setValue(4)
    panel.convert()
    wait_idle(qtbot, window)
    assert [c.seed for c in panel.cells] == [0, 1, 2, 3]
    assert all(c.view.image() is not None and c.view.image().width() == 64 for c in panel.cells)

    panel.cells[1].lock.setChecked(True)
    panel.reroll()
    wait_idle(qtbot, window)
    seeds = [c.seed for c in panel.cells]
    assert seeds[1] == 1 and seeds != [0, 1, 2, 3]

    panel._pick("A", panel.cells[0])
    panel._pick("B", panel.cells[1])
    for value in (10, 40, 70):  # a dragged slider: only the last mix needs to run
        panel.slider.setValue(value)
    wait_idle(qtbot, window)
    assert panel.mix_view.image() is not None
    np.testing.assert_allclose(panel.mix_style.vector,
                               0.3 * panel.cells[0].style.vector + 0.7 * panel.cells[1].style.vector, rtol=1e-5)

    panel.make_voice(panel.cells[2].style, panel.cells[2])
    wait_idle(qtbot, window)
    assert panel.cells[2].voice is not None and abs(panel.cells[2].voice.size - panel.source_voice.samples.size) <= 300

    panel._send_cell("voice", panel.cells[2])
    assert window.tabs.currentWidget() is window.voice
    assert window.voice.ref_style.style is panel.cells[2].style
    window.voice.source.load_file(str(voices()[3]))
    wait_idle(qtbot, window)
    window.voice.convert()
    wait_idle(qtbot, window)
    assert window.voice.result is not None


def test_batch_export_writes_manifest_and_resumes(qtbot, window, tmp_path):
    src_faces, src_voices, out = tmp_path / "f", tmp_path / "v", tmp_path / "out"
    src_faces.mkdir()
    src_voices.mkdir()
    for f in faces()[:2]:
        shutil.copy(f, src_faces)
    shutil.copy(voices()[0], src_voices)
    panel = window.export
    panel.fields["faces"].edit.setText(str(src_faces))
    panel.fields["voices"].edit.setText(str(src_voices))
    panel.latents.setValue(2)
    panel.out.edit.setText(str(out))
    # cancel after the first item, then start again: the rest is done, the first is skipped
    panel.convert()
    panel._job.progress.connect(lambda *a: panel.cancel())
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT)
    assert "cancelled" in panel.state.text()
    panel.latents.setValue(40)  # a bigger export, to watch the GUI thread while it runs
    panel.out.edit.setText(str(tmp_path / "big"))
    with EventLoopProbe() as probe:
        panel.convert()
        qtbot.waitUntil(lambda: not panel.running, timeout=WAIT)
    probe.check()
    assert "120 of 120 items" in panel.state.text()
    panel.latents.setValue(2)
    panel.out.edit.setText(str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    done_first = sum(i["status"] == "done" for i in manifest["items"])
    assert 1 <= done_first < 6
    panel.convert()
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT)
    assert "6 of 6 items" in panel.state.text() and f"{done_first} were already done" in panel.state.text()
    assert len(list((out / "faces").glob("*.png"))) == 4 and len(list((out / "voices").glob("*.wav"))) == 2
    assert (out / "manifest.csv").is_file()


def test_batch_export_error_path_shows_a_message(qtbot, window, tmp_path):
    panel = window.export
    panel.fields["faces"].edit.setText(str(tmp_path / "no-such-folder"))
    panel.latents.setValue(1)
    panel.out.edit.setText(str(tmp_path / "out"))
    panel.convert()
    assert "folder not found" in window.ctx.errors[-1]
    assert window.ctx.error_box is not None and window.ctx.error_box.isVisible()


def test_bad_reference_shows_a_readable_message(qtbot, window, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    window.face.ref_voice.load_file(str(silent))
    wait_idle(qtbot, window)
    assert "silent" in window.ctx.errors[-1] and "Traceback" not in window.ctx.errors[-1]
    window.face.convert()  # no sources
    assert "source face" in window.ctx.errors[-1]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    window.face.sources.add(str(broken))
    assert "cannot read image broken.png" in window.ctx.errors[-1]


def test_a_photo_the_engine_accepts_opens_in_the_app(qtbot, window, tmp_path):
    big = tmp_path / "big.png"  # 10k x 10k: over Qt's 256 MB image limit, within the engine's 20k x 20k
    Image.new("RGB", (10_000, 10_000), (200, 120, 90)).save(big)
    errors = len(window.ctx.errors)
    window.face.sources.add(str(big))
    window.face.ref_face.set_path(str(big))
    assert len(window.ctx.errors) == errors, window.ctx.errors[errors:]
    assert window.face.sources.paths() == [str(big)] and window.face.ref_face.path == str(big)
    preview = window.face.ref_face.view._image
    assert (preview.width(), preview.height()) == (1024, 1024)  # a preview, not 300 MB of pixels
    assert preview.pixelColor(512, 512).getRgb()[:3] == (200, 120, 90)


def test_event_loop_keeps_turning_during_inference(qtbot, window, tmp_path):
    long_voice = tmp_path / "long.wav"
    sf.write(long_voice, speech_like(30.0), SR)
    with EventLoopProbe() as probe:
        job = window.worker.submit(lambda e, job: e.voice_from_voice(str(long_voice), str(long_voice)), "Long conversion")
        with qtbot.waitSignal(job.finished, timeout=WAIT):
            pass
    probe.check()


def test_no_audio_device_disables_recording_and_playback(qtbot, window, monkeypatch):
    from xfavot_studio.widgets import PlayButton, VoiceSlot

    monkeypatch.setattr(audio_io, "devices", lambda kind: [])
    slot = VoiceSlot(window.ctx, "Voice", "voices")
    play = PlayButton(window.ctx, lambda: None)
    qtbot.addWidget(slot)
    qtbot.addWidget(play)
    assert not slot.record_button.isEnabled() and "No microphone" in slot.record_button.toolTip()
    assert not play.isEnabled() and "No audio output" in play.toolTip()
    slot.load_file(str(voices()[0]))  # files still work
    wait_idle(qtbot, window)
    assert slot.samples is not None


def test_a_clipping_recording_gets_a_note(qtbot, window):
    from xfavot_studio.widgets import VoiceSlot

    slot = VoiceSlot(window.ctx, "Voice", "voices")
    qtbot.addWidget(slot)
    clean = 0.5 * speech_like(2.0)
    slot.set_samples(clean, "clean")
    assert slot.level_note.isHidden()
    slot.set_samples(np.clip(8 * clean, -1, 1), "loud")  # driven 18 dB into full scale
    assert not slot.level_note.isHidden() and "clips" in slot.level_note.text()
    slot.set_samples(clean, "clean again")
    assert slot.level_note.isHidden()


@pytest.fixture()
def fake_mic(monkeypatch):
    """A 48 kHz microphone that hears 3 s of speech, and speakers that record what they play."""
    from fake_sounddevice import FakeSoundDevice

    fake = FakeSoundDevice(0.5 * speech_like(3.0, rate=48000), rate=48000, speed=4.0)
    monkeypatch.setitem(audio_io._state, "module", fake)
    monkeypatch.setitem(audio_io._state, "reason", "")
    return fake


def test_recording_at_48k_stops_at_its_maximum_and_reaches_the_engine_at_24k(qtbot, fake_mic, window):
    from xfavot_studio.widgets import VoiceSlot

    slot = VoiceSlot(window.ctx, "Voice", "voices")
    qtbot.addWidget(slot)
    assert slot.record_button.isEnabled() and "Record" in slot.record_button.toolTip()
    levels = []
    slot.recorder.level.connect(levels.append)
    slot.max_seconds.setValue(1.0)
    with qtbot.waitSignal(slot.recorder.finished, timeout=10_000) as finished:
        slot.record_button.setChecked(True)  # nobody presses Stop: the maximum length ends it
    samples, rate = finished.args
    assert rate == 48000 and len(samples) == 48000
    np.testing.assert_array_equal(samples, fake_mic.signal[:48000])  # every block, in order, none twice
    assert max(levels) == pytest.approx(np.abs(fake_mic.signal).max(), rel=0.3)  # the meter moved
    assert fake_mic.streams[0].closed and not slot.recorder.recording
    wait_idle(qtbot, window)
    assert not slot.record_button.isChecked() and slot.name.text().startswith("recording")
    expected = window.worker.engine.read_voice(Audio(samples, rate))
    assert len(slot.samples) == 24000
    np.testing.assert_allclose(slot.samples, expected, atol=1e-6)


def test_recording_stopped_early_keeps_what_was_heard(qtbot, fake_mic, window):
    from xfavot_studio.widgets import VoiceSlot

    slot = VoiceSlot(window.ctx, "Voice", "voices")
    qtbot.addWidget(slot)
    slot.max_seconds.setValue(10.0)
    slot.record_button.setChecked(True)
    qtbot.waitUntil(lambda: sum(b.size for b in slot.recorder._blocks) >= 9600, timeout=5000)
    with qtbot.waitSignal(slot.recorder.finished, timeout=5000) as finished:
        slot.record_button.setChecked(False)  # Stop
    samples, _ = finished.args
    assert 9600 <= len(samples) < len(fake_mic.signal)
    np.testing.assert_array_equal(samples, fake_mic.signal[: len(samples)])


def test_play_sends_the_samples_to_the_chosen_output(qtbot, fake_mic, window):
    from xfavot_studio.widgets import PlayButton

    wav = speech_like(0.5)
    window.ctx.settings.setValue("audio/output", "Fake speakers")
    play = PlayButton(window.ctx, lambda: wav)
    qtbot.addWidget(play)
    assert play.isEnabled()
    play.click()
    (samples, rate, device), = fake_mic.played
    np.testing.assert_array_equal(samples, wav)
    assert rate == SR and device == 1


def test_missing_portaudio_says_so_and_files_still_work(qtbot, window, monkeypatch):
    from xfavot_studio.widgets import PlayButton, VoiceSlot

    monkeypatch.setitem(audio_io._state, "module", None)
    monkeypatch.setitem(audio_io._state, "reason", "sound is unavailable: PortAudio could not be loaded (no lib)")
    slot = VoiceSlot(window.ctx, "Voice", "voices")
    play = PlayButton(window.ctx, lambda: speech_like(0.5))
    qtbot.addWidget(slot)
    qtbot.addWidget(play)
    assert not slot.record_button.isEnabled() and "PortAudio" in slot.record_button.toolTip()
    assert not play.isEnabled() and "PortAudio" in play.toolTip()
    assert audio_io.play(speech_like(0.5), SR).startswith("sound is unavailable")
    slot.load_file(str(voices()[0]))
    wait_idle(qtbot, window)
    assert slot.samples is not None and len(slot.samples) > SR


def test_shortcut_ctrl_enter_converts_on_the_current_panel(qtbot, window, media):
    window.tabs.setCurrentWidget(window.face)
    window.face.sources.add(str(faces()[0]))
    window.face.ref_voice.load_file(str(media / "voice.wav"))
    wait_idle(qtbot, window)
    qtbot.keyClick(window, Qt.Key_Return, Qt.ControlModifier)
    wait_idle(qtbot, window)
    assert len(window.face.results.images) == 1


def test_the_app_aligns_photos_with_the_landmark_model(qtbot, tiny_checkpoint, home, media, monkeypatch, tmp_path):
    import face_alignment
    from test_face import FakeLandmarks, face_landmarks

    FakeLandmarks.made, FakeLandmarks.faces = [], [face_landmarks((150, 140), 60)]
    monkeypatch.setattr(face_alignment, "FaceAlignment", FakeLandmarks)
    photo = tmp_path / "photo.jpg"  # not model-sized, so it is aligned, as a user's photo would be
    Image.new("RGB", (300, 300), (200, 180, 160)).save(photo)
    window = open_window(qtbot, tiny_checkpoint, home, align_faces=True)
    window.face.sources.add(str(photo))
    window.face.ref_voice.load_file(str(media / "voice.wav"))
    wait_idle(qtbot, window)
    window.face.convert()
    wait_idle(qtbot, window)
    assert len(window.face.results.images) == 1 and not window.ctx.errors
    assert FakeLandmarks.made == ["cpu"] and window.worker.engine.aligner._detector.calls == 1


def test_settings_persist_between_sessions(qtbot, tiny_checkpoint, home):
    first = open_window(qtbot, tiny_checkpoint, home)
    first.tabs.setCurrentWidget(first.latent)
    first.ctx.remember_dir("faces", str(faces()[0]))
    first.export.latents.setValue(7)
    first.export._save_settings()
    first.close()
    second = MainWindow(None, None, worker=EngineWorker(Engine(align_faces=False)))
    qtbot.addWidget(second)
    qtbot.waitUntil(lambda: second.model_info is not None, timeout=WAIT)
    assert Path(second.model_info.path) == Path(tiny_checkpoint)  # the last model used
    assert second.tabs.currentWidget() is second.latent
    assert second.ctx.last_dir("faces") == str(faces()[0].parent)
    assert second.export.latents.value() == 7


def test_model_library_import_refuse_switch_delete(qtbot, window, tiny_checkpoint, tmp_path):
    panel = window.models
    copy = tmp_path / "mine.safetensors"
    shutil.copy(tiny_checkpoint, copy)
    panel.import_file(str(copy))
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: any(e.name == "mine" for e in panel.entries), timeout=WAIT)
    pickle = tmp_path / "evil.safetensors"
    pickle.write_bytes(b"\x80\x04K\x01.")
    panel.import_file(str(pickle))
    wait_idle(qtbot, window)
    assert "pickle" in window.ctx.errors[-1]
    panel.import_file(str(tmp_path / "model.pt"))
    wait_idle(qtbot, window)
    assert "only .safetensors" in window.ctx.errors[-1]

    mine = next(e for e in panel.entries if e.name == "mine")
    panel.select_path(mine.path)
    panel.use_selected()
    qtbot.waitUntil(lambda: window.model_info.path == mine.path, timeout=WAIT)
    panel.delete_selected()
    assert "in use" in window.ctx.errors[-1]

    panel.activate.emit(str(tiny_checkpoint))
    qtbot.waitUntil(lambda: window.model_info.path == str(tiny_checkpoint), timeout=WAIT)
    wait_idle(qtbot, window)
    panel.confirm = lambda title, text: True
    panel.select_path(mine.path)
    panel.delete_selected()
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: all(e.name != "mine" for e in panel.entries), timeout=WAIT)
    assert not Path(mine.path).exists()


@pytest.fixture()
def avatar_folder(tmp_path):
    root = tmp_path / "avatars"
    for f in faces():
        gender = "female" if "female" in f.name else "male"
        (root / gender).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / gender / f.name)
    return root


def training_tab(qtbot, window, avatar_folder, steps: int, name: str = "my-avatars"):
    """The training tab filled in for a CPU run of `steps` steps at batch 2 on the sample avatars."""
    panel = window.training
    # the library is listed again once the model is loaded; the base list then holds the model in use
    qtbot.waitUntil(lambda: panel.base.findData(window.model_info.path) >= 0, timeout=WAIT)
    panel.avatars.edit.setText(str(avatar_folder))
    panel.steps.setValue(steps)
    panel.batch.setValue(2)
    panel.device.setCurrentText("cpu")
    panel.name.setText(name)
    return panel


def test_training_tab_finetunes_and_adds_a_model(qtbot, window, avatar_folder, tiny_checkpoint):
    panel = training_tab(qtbot, window, avatar_folder, 3, "test avatars")
    assert panel.base.currentData() == window.model_info.path  # the model in use, not the embedded default
    panel.sample_every.setValue(2)
    with EventLoopProbe() as probe, qtbot.waitSignal(panel.model_added, timeout=300_000) as added:
        panel.start()
    probe.check()  # the GUI thread kept turning while the trainer ran
    entry = added.args[0]
    assert entry.name == "test avatars" and entry.preset == "tiny" and entry.steps == 3
    xs, ys = panel.history["G/total"]
    assert xs == [1, 2, 3] and all(np.isfinite(ys))
    assert panel.curves["G/total"].getData()[0].tolist() == [1, 2, 3]
    assert panel.preview.image() is not None
    qtbot.waitUntil(lambda: any(e.name == "test avatars" for e in window.models.entries), timeout=WAIT)
    with EventLoopProbe() as probe:
        window.models.activate.emit(entry.path)
        qtbot.waitUntil(lambda: window.model_info.path == entry.path, timeout=WAIT)
    probe.check(min_seconds=0.0)  # loading a model happens off the GUI thread


def test_closing_during_training_asks_then_stops_with_a_checkpoint(qtbot, window, avatar_folder, home):
    panel = training_tab(qtbot, window, avatar_folder, 500)
    panel.start()
    qtbot.waitUntil(lambda: bool(panel.history), timeout=300_000)
    window.confirm = lambda title, text: False
    window.close()
    assert window.isVisible() and panel.running  # the user said no: nothing stopped

    panel.pause_button.setChecked(True)
    assert panel.run.trainer._paused.is_set()
    window.confirm = lambda title, text: True
    window.close()
    assert not panel.running
    runs = list((home / "runs").glob("*/run.json"))
    assert len(runs) == 1
    state = json.loads(runs[0].read_text())
    assert 1 <= state["step"] < 500  # stopped early, with a checkpoint to resume from
    from xfavot_studio.training_panel import unfinished_runs

    assert unfinished_runs(home / "runs")[0]["steps"] == 500


def test_screenshot_option_writes_one_png_per_panel(qtbot, tiny_checkpoint, home, tmp_path):
    from PIL import Image

    from xfavot_studio import app

    out = tmp_path / "shots"
    assert app.main(["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--screenshot", str(out)]) == 0
    shots = sorted(out.glob("*.png"))
    assert [p.name for p in shots] == ["1-face-from-voice.png", "2-voice-from-face.png", "3-live.png",
                                       "4-latent.png", "5-batch-export.png", "6-training.png", "7-models.png"]
    pixels = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) for p in shots]
    assert all(p.shape == pixels[0].shape and p.std() > 5 for p in pixels)  # real content, not blank
    assert not np.array_equal(pixels[0], pixels[2])


def test_a_stopped_run_resumes_to_the_end(qtbot, window, avatar_folder, home):
    panel = training_tab(qtbot, window, avatar_folder, 8, "resumed")
    panel.start()
    qtbot.waitUntil(lambda: bool(panel.history), timeout=300_000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=300_000)
    assert "can be resumed" in panel.state.text()
    stopped_at = panel.progress.value()
    assert panel.resumable.count() == 1 and panel.resume_button.isEnabled()
    with qtbot.waitSignal(panel.model_added, timeout=300_000) as added:
        panel.resume()
    assert added.args[0].name == "resumed" and added.args[0].steps == 8
    assert panel.history["G/total"][0][0] == stopped_at + 1  # continued, not restarted
    qtbot.waitUntil(lambda: not panel.running, timeout=WAIT)
    assert panel.resumable.count() == 0


def test_drag_and_drop_of_faces_and_voices(qtbot, window, media):
    drop_file(window.face.sources, faces()[3])
    assert window.face.sources.paths() == [str(faces()[3])]
    drop_file(window.voice.ref_face, faces()[4])
    assert window.voice.ref_face.path == str(faces()[4])
    drop_file(window.voice.source, media / "voice2.wav")
    wait_idle(qtbot, window)
    assert window.voice.source.label == "voice2.wav"
    drop_file(window.voice.ref_face, media / "voice2.wav")  # a sound dropped on a face slot is ignored
    assert window.voice.ref_face.path == str(faces()[4])


def test_bad_huge_and_short_files_dropped_on_every_slot(qtbot, window, media, tmp_path):
    """Every face and voice slot of every tab: a damaged file and a too-short or silent voice get a
    one-line message and leave the slot as it was; a huge photo and a long voice are taken."""
    def drop(widget, path):
        drop_file(widget, path)
        wait_idle(qtbot, window)

    (tmp_path / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "damaged.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 20)
    sf.write(tmp_path / "blip.wav", speech_like(0.1), SR)
    sf.write(tmp_path / "silent.flac", np.zeros(2 * SR, np.float32), SR)
    sf.write(tmp_path / "long.wav", speech_like(90.0), SR)
    Image.new("RGB", (8000, 6000), (90, 140, 200)).save(tmp_path / "huge.png")

    face_slots = [window.face.ref_face, window.voice.ref_face, window.live.reference.face, window.latent.source_face]
    voice_slots = [window.face.ref_voice, window.voice.source, window.voice.ref_voice, window.live.reference.voice,
                   window.latent.source_voice]
    for slot in face_slots:
        errors = len(window.ctx.errors)
        drop(slot, tmp_path / "damaged.png")
        assert len(window.ctx.errors) == errors + 1 and "damaged.png" in window.ctx.errors[-1], slot.title()
        assert "Traceback" not in window.ctx.errors[-1] and not slot.path
        drop(slot, tmp_path / "huge.png")
        assert slot.path == str(tmp_path / "huge.png") and len(window.ctx.errors) == errors + 1, slot.title()
    for slot in voice_slots:
        for bad, words in (("damaged.wav", "damaged.wav"), ("blip.wav", "short"), ("silent.flac", "silent")):
            errors = len(window.ctx.errors)
            drop(slot, tmp_path / bad)
            assert len(window.ctx.errors) == errors + 1, (slot.title(), bad)
            assert words in window.ctx.errors[-1] and "\n" not in window.ctx.errors[-1], window.ctx.errors[-1]
            assert slot.samples is None, (slot.title(), bad)
        drop(slot, tmp_path / "long.wav")
        assert slot.label == "long.wav" and len(slot.samples) == 90 * SR, slot.title()
    drop(window.face.sources, tmp_path / "damaged.png")
    assert window.face.sources.paths() == [] and "damaged.png" in window.ctx.errors[-1]


def test_a_failed_switch_keeps_the_previous_model(qtbot, window, tmp_path):
    import torch

    before = window.model_info.path
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04K\x01.")
    window.load_model(str(bad))
    wait_idle(qtbot, window)
    assert "pickle" in window.ctx.errors[-1] and "previous model stays active" in window.ctx.errors[-1]
    assert window.model_info.path == before and not window.banner.isVisible()
    if not torch.cuda.is_available():
        window.device_combo.setCurrentText("cuda")
        wait_idle(qtbot, window)
        assert "CUDA" in window.ctx.errors[-1]
        assert window.device_combo.currentText() == "cpu"  # back to where the model runs


def test_vocoder_choice_reloads_the_model_and_is_remembered(qtbot, window):
    assert window.model_info.vocoder.startswith("Griffin-Lim (no neural")  # the test model has none: auto falls back
    window.vocoder_combo.setCurrentText("griffin-lim")
    wait_idle(qtbot, window)
    assert window.model_info.vocoder == "Griffin-Lim"  # chosen, not a fallback
    assert window.settings.value("engine/vocoder") == "griffin-lim"
    assert "Griffin-Lim" in window.model_label.text()
    window.vocoder_combo.setCurrentText("neural")  # this model has none: said, not silently replaced
    wait_idle(qtbot, window)
    assert "has no neural vocoder" in window.ctx.errors[-1]
    assert window.vocoder_combo.currentText() == "griffin-lim" and window.model_info.vocoder == "Griffin-Lim"
