"""Live voice conversion: the streaming converter against offline conversion, its joins, the live
audio path on a file, device failures, and the app's Live tab (a file-fed stand-in for the sound card)."""
import re

import numpy as np
import pytest
import torch

from core import audio
from core.engine import Engine
from core.streaming import StreamingConverter
from tests.conftest import speech_like
from xfavot_studio.live import FileStream, LiveSession, run_file


class IdentityGenerator(torch.nn.Module):
    """G_A that returns its input mel: isolates what streaming itself does (windows, partial
    vocoding, SOLA, crossfades) from what an untrained tiny generator would do."""

    def forward(self, mel, style, f0_features):
        return mel


@pytest.fixture()
def identity_engine(tiny_checkpoint):
    e = Engine(batch_size=2, align_faces=False)
    e.load(tiny_checkpoint, "cpu")
    e.nets["generator_audio"] = IdentityGenerator()
    return e


@pytest.fixture()
def style(identity_engine):
    return identity_engine.style_of_voice(speech_like(2.0, f0=220, seed=1), "female")


def log_mel(wav):
    return audio.log_mel(wav, "xfavot24k").numpy()


@pytest.mark.parametrize("block_ms", [100, 200])
def test_streaming_matches_offline_conversion_after_the_context_fills(identity_engine, style, block_ms):
    src = speech_like(5.0)
    offline = identity_engine.voice_from_style(src, style)
    streamed = StreamingConverter(identity_engine, style, block_ms=block_ms, context_ms=2000).convert(src)
    assert streamed.shape == src.shape
    a, b = log_mel(offline), log_mel(streamed)
    start = int(2.5 * audio.SAMPLE_RATE / audio.HOP)  # once 2 s of left context exist
    gap = np.abs(a[:, start:] - b[:, start:]).mean()
    to_silence = np.abs(a[:, start:] - log_mel(np.zeros_like(src))[:, start:]).mean()
    # measured: 0.17 (100 ms) and 0.18 (200 ms) log-mel L1, against 2.65 to silence and 0.24 for
    # Griffin-Lim's own offline reconstruction error of the source
    assert gap < 0.25 and gap < 0.1 * to_silence, (gap, to_silence)


def test_streaming_toward_a_voice_equalises_onto_its_envelope(identity_engine, style):
    """As offline: once the speaker talks, the converted speech's envelope follows the reference's
    (the identity G_A leaves the source's own, far from it); silence does not move the equaliser."""
    import dataclasses

    src = speech_like(4.0, f0=120.0, seed=7)
    distance = {}
    for name, target in (("matched", style), ("plain", dataclasses.replace(style, envelope=None))):
        converter = StreamingConverter(identity_engine, target, block_ms=100)
        converter.convert(np.zeros(audio.SAMPLE_RATE, np.float32))
        assert converter.gain is None  # nothing heard yet
        out = converter.convert(src)
        late = torch.from_numpy(log_mel(out[2 * audio.SAMPLE_RATE:]))
        # the shape across bands: the output's level is set apart (LevelFollower), as offline
        gap = audio.speech_envelope(late) - torch.from_numpy(style.envelope)
        distance[name] = float((gap - gap.mean()).abs().mean())
    # measured: 0.20 matched, 0.47 plain (normalised log-mel units)
    assert distance["matched"] < 0.5 * distance["plain"], distance


def test_block_joins_do_not_click(identity_engine, style):
    stream = StreamingConverter(identity_engine, style, block_ms=100)
    out = np.concatenate([stream.process(chunk) for chunk in np.array_split(speech_like(4.0), 37)])
    jumps = np.abs(np.diff(out))
    joins = np.arange(stream.block, out.size, stream.block) - 1  # last sample of a block -> first of the next
    inside = np.delete(jumps, joins)
    assert out.size % stream.block == 0 and out.size >= 4.0 * audio.SAMPLE_RATE - 2 * stream.block
    assert jumps[joins].max() <= 1.5 * inside.max(), (jumps[joins].max(), inside.max())


class RecordingJDC(torch.nn.Module):
    """The model's JDC, remembering the mel it last read F0 features from."""

    def __init__(self, jdc):
        super().__init__()
        self.jdc, self.last = jdc, None

    def get_feature(self, mel):
        self.last = mel[0, 0].clone()
        return self.jdc.get_feature(mel)


def test_auto_transposition_listens_then_moves_the_f0_features_to_the_style_register(identity_engine):
    identity_engine.nets["jdc"] = jdc = RecordingJDC(identity_engine.nets["jdc"])
    high = identity_engine.style_of_voice(speech_like(2.0, f0=220, seed=1), "female")
    stream = StreamingConverter(identity_engine, high, block_ms=100)
    low = speech_like(4.0, f0=110, seed=2)
    stream.process(low[: int(0.5 * audio.SAMPLE_RATE)])
    assert not stream.settled and stream.semitones == 0  # still listening: F0 features untouched
    gain = stream.input_level.factor  # the input at the corpora's loudness
    assert torch.equal(jdc.last, identity_engine._mel(stream.buffer * gain)[:, :-1])
    stream.process(low[int(0.5 * audio.SAMPLE_RATE):])
    assert stream.settled and stream.semitones == 12  # 110 Hz -> the reference's 220 Hz
    # JDC now reads the input an octave up (the newest audio shifted block by block), G_A the input itself
    gain = stream.input_level.factor
    whole = identity_engine._mel(audio.pitch_shift(stream.buffer, 12) * gain)[:, :-1]
    heard = jdc.last[:, 20:-10]  # away from the edges, where the whole-window shift lacks context too
    ours = np.abs((heard - whole[:, 20:-10]).numpy()).mean()
    unshifted = np.abs((heard - identity_engine._mel(stream.buffer * gain)[:, :-1][:, 20:-10]).numpy()).mean()
    assert ours < 0.3 * unshifted, (ours, unshifted)


def test_toward_a_voice_the_live_style_is_pushed_away_from_the_speaker_once_heard(identity_engine, monkeypatch):
    """As offline (Engine._pushed_from_source), once, from the window heard when SETTLE_VOICED_SECONDS
    of speech were; with a fixed transposition too. Toward a latent sample the style stays."""
    given = []
    push = identity_engine._pushed_from_source
    monkeypatch.setattr(identity_engine, "_pushed_from_source", lambda wav, st: given.append(wav.copy()) or push(wav, st))
    voice = identity_engine.style_of_voice(speech_like(2.0, f0=220, seed=1), "female")
    stream = StreamingConverter(identity_engine, voice, block_ms=100, transpose=0)
    speech = speech_like(4.0, f0=110, seed=2)
    stream.process(speech[: int(0.5 * audio.SAMPLE_RATE)])
    assert given == [] and torch.equal(stream.style, identity_engine._style_tensor([voice], 1))
    stream.process(speech[int(0.5 * audio.SAMPLE_RATE):])
    assert len(given) == 1 and torch.equal(stream.style, push(given[0], voice))
    assert not torch.equal(stream.style, identity_engine._style_tensor([voice], 1))
    latent = StreamingConverter(identity_engine, identity_engine.sample_style("female", 0), block_ms=100)
    latent.process(speech)
    assert len(given) == 1 and latent.settled


def test_the_live_input_is_brought_to_the_corpora_loudness(identity_engine, style):
    quiet = 0.1 * speech_like(4.0, f0=110, seed=2)  # -40 LUFS: 17 dB below the corpora
    stream = StreamingConverter(identity_engine, style, block_ms=100)
    stream.process(quiet)
    want = audio.TARGET_LUFS - audio.loudness(quiet)
    assert want > 15 and abs(stream.input_level.db - want) < 2.0
    noise = StreamingConverter(identity_engine, style, block_ms=100)
    noise.process(speech_like(3.0) * 1e-3)  # room noise below QUIET_RMS: not a level to follow
    assert noise.input_level.db is None and noise.output_level.db is None


def test_auto_transposition_moves_once_toward_the_register_when_the_voice_misses_it(identity_engine, monkeypatch):
    """The identity G_A keeps the source's 110 Hz whatever the F0 features say: toward a 150 Hz
    register (+5) the output misses by 5.4 semitones, so the transposition moves 4 further, once;
    toward 115 Hz (+1) it lands within 2 semitones and stays."""
    latent = identity_engine.sample_style("female", 0)
    speech = speech_like(6.0, f0=110, seed=2)
    for register, settled, landed in ((150.0, 5, 9), (115.0, 1, 1)):
        monkeypatch.setattr(identity_engine, "register_of", lambda style, hz=register: hz)
        stream = StreamingConverter(identity_engine, latent, block_ms=100)
        stream.process(speech[: int(2.0 * audio.SAMPLE_RATE)])
        assert stream.settled and stream.semitones == settled and stream.landing
        stream.process(speech[int(2.0 * audio.SAMPLE_RATE):])
        assert not stream.landing and stream.semitones == landed
        assert ("moved +4" in stream.pitch_summary()) == (landed != settled)
    voice = StreamingConverter(identity_engine, identity_engine.style_of_voice(speech_like(2.0, f0=220, seed=1)), block_ms=100)
    assert not voice.landing  # a voice reference's register is its own F0: no landing, as offline


def test_fixed_transposition_and_silence(identity_engine, style):
    off = StreamingConverter(identity_engine, style, block_ms=100, transpose=0)
    off.process(speech_like(2.0, f0=110))
    assert off.settled and off.semitones == 0
    fixed = StreamingConverter(identity_engine, style, block_ms=100, transpose=-30)
    assert fixed.semitones == -12  # at most an octave
    quiet = StreamingConverter(identity_engine, style, block_ms=100)
    quiet.process(speech_like(3.0) * 1e-3)  # -55 dBFS: room noise, not a voice to listen to
    assert not quiet.settled and quiet.heard_f0 == []


def test_file_mode_plays_everything_through_the_live_path_at_a_device_rate(identity_engine, style):
    src = speech_like(2.0, rate=48000)
    stream = StreamingConverter(identity_engine, style, block_ms=100)
    out, stats = run_file(stream, src, rate=48000, speed=1.0, tail_s=0.5)  # real-time pace
    assert out.size >= src.size + 0.5 * 48000 - stream.block * 2 and not stats.error
    # 25 blocks; a loaded test machine may drop a few stale ones, as the live path is meant to
    assert stats.blocks + stats.dropped_blocks >= 24 and stats.blocks >= 15
    assert np.abs(out).max() > 0.01  # converted sound came out
    assert stats.algorithmic_ms == pytest.approx(150.0)  # 100 ms block + 50 ms held back for the join


def test_a_device_that_disappears_mid_stream_stops_the_session_with_a_message(identity_engine, style):
    messages = []

    def vanishing_device(inp, out, rate, blocksize, callback, finished):
        return FileStream(speech_like(3.0), rate, blocksize, callback, finished, speed=4.0, fail_after_s=0.5)

    session = LiveSession(StreamingConverter(identity_engine, style), device_rate=audio.SAMPLE_RATE,
                          stream_factory=vanishing_device, on_error=messages.append)
    session.start()
    session.stream.done.wait(10)
    assert messages and "disconnected" in messages[0] and not session.running
    session.stop()


def test_a_device_that_cannot_open_is_a_readable_error(identity_engine, style):
    def no_device(*args):
        raise OSError("Invalid device")

    session = LiveSession(StreamingConverter(identity_engine, style), device_rate=audio.SAMPLE_RATE,
                          stream_factory=no_device)
    with pytest.raises(RuntimeError, match="cannot open the audio devices: Invalid device"):
        session.start()


def test_live_tab_converts_a_file_fed_stream_and_shows_its_latency(qtbot, tiny_checkpoint, home, media):
    from tests.test_app import WAIT

    streams = []

    def file_device(inp, out, rate, blocksize, callback, finished):
        seconds = 1.0 if streams else 20.0  # the second stream ends on its own: a vanished device
        streams.append(FileStream(speech_like(seconds, rate=rate), rate, blocksize, callback, finished))
        return streams[-1]

    from xfavot_studio.main_window import MainWindow
    from xfavot_studio.worker import EngineWorker

    window = MainWindow(str(tiny_checkpoint), "cpu", worker=EngineWorker(Engine(batch_size=4, align_faces=False)),
                        live_stream_factory=file_device)
    qtbot.addWidget(window)
    window.confirm = lambda title, text: True
    window.show()
    live = window.live
    live.reference.voice.load_file(str(media / "voice2.wav"))
    live.reference.setCurrentWidget(live.reference.voice)
    qtbot.waitUntil(lambda: live.reference.voice.samples is not None, timeout=WAIT)
    live.transpose.setCurrentIndex(live.transpose.findData("5"))
    assert window.ctx.settings.value("live/transpose") == "5"  # kept for the next start of the app
    live.start_button.click()
    qtbot.waitUntil(lambda: live.session is not None and live.session.stats.blocks >= 5, timeout=WAIT)
    qtbot.wait(300)  # the panel polls the session every 100 ms
    assert "Latency" in live.latency.text() and "block 100" in live.latency.text()
    assert live.session.converter.semitones == 5 and live.pitch.text() == "Pitch: +5 semitones (fixed)"
    assert re.search(r"· blocks: [1-9]", live.dropped.text()) and live.start_button.isChecked()
    live.start_button.click()  # stop
    assert not live.start_button.isChecked() and window.ctx.errors == []
    assert np.abs(streams[0].recorded()).max() > 0.01  # converted sound reached the output

    live.start_button.click()
    qtbot.waitUntil(lambda: bool(window.ctx.errors), timeout=WAIT)
    assert "disconnected" in window.ctx.errors[-1] and not live.start_button.isChecked() and live.session is None
