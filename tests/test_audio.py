"""Audio front end: the mel against an independent reference, loading, and every bad-input case."""

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from core import audio
from core.config import MEL_FRONTENDS
from tests.conftest import SR, expect_user_error, speech_like


def reference_log_mel(wav: np.ndarray, frontend: str) -> np.ndarray:
    """StarGANv2-VC's log-mel written out in float64 numpy + librosa's HTK filterbank."""
    sr, fmax = audio.mel_scale_params(frontend)
    x = np.pad(wav.astype(np.float64), audio.N_FFT // 2, mode="reflect")  # centred frames
    n = np.arange(audio.WIN)
    window = np.zeros(audio.N_FFT)
    left = (audio.N_FFT - audio.WIN) // 2
    window[left:left + audio.WIN] = 0.5 - 0.5 * np.cos(2 * np.pi * n / audio.WIN)  # periodic Hann
    frames = 1 + (x.size - audio.N_FFT) // audio.HOP
    idx = np.arange(audio.N_FFT)[None] + audio.HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
    fb = librosa.filters.mel(sr=sr, n_fft=audio.N_FFT, n_mels=80, fmin=0.0, fmax=fmax, htk=True, norm=None)
    return (np.log(1e-5 + fb @ power.T) - (-4.0)) / 4.0


@pytest.mark.parametrize("frontend", MEL_FRONTENDS)
def test_log_mel_matches_reference(frontend):
    wav = speech_like(2.0) + 0.01 * np.random.default_rng(3).standard_normal(48000).astype(np.float32)
    ours = audio.log_mel(wav, frontend).numpy()
    ref = reference_log_mel(wav, frontend)
    assert ours.shape == ref.shape == (80, 48000 // 300 + 1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_front_ends_differ_as_documented():
    wav = speech_like(1.0)
    assert not np.allclose(audio.log_mel(wav, "xfavot24k"), audio.log_mel(wav, "stargan_vc_compat"), atol=1e-3)


def test_batched_log_mel_equals_single():
    a, b = speech_like(1.0), speech_like(1.0, f0=200)
    batch = audio.log_mel(np.stack([a, b]))
    np.testing.assert_allclose(batch[1], audio.log_mel(b), atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000, 96000])
def test_any_rate_is_resampled_to_24k(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, speech_like(1.0, rate=rate), rate)
    wav = audio.load_audio(path)
    assert wav.dtype == np.float32 and abs(wav.size - SR) <= 1


def test_resampling_keeps_the_pitch(tmp_path):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    wav = audio.load_audio(tmp_path / "tone.wav")
    spectrum = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spectrum) * SR / wav.size - 440) < 2


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_mixed_to_mono(tmp_path, channels):
    mono = speech_like(1.0)
    data = np.stack([mono] * channels, axis=1)
    sf.write(tmp_path / "mc.wav", data, SR)
    np.testing.assert_allclose(audio.load_audio(tmp_path / "mc.wav"), mono, atol=1e-4)


@pytest.mark.parametrize("subtype,ext", [("PCM_16", "wav"), ("PCM_24", "wav"), ("FLOAT", "wav"), ("PCM_16", "flac")])
def test_bit_depths_and_formats(tmp_path, subtype, ext):
    sf.write(tmp_path / f"x.{ext}", speech_like(1.0), SR, subtype=subtype)
    assert audio.load_audio(tmp_path / f"x.{ext}").size == SR


def test_missing_file(tmp_path):
    expect_user_error(lambda: audio.load_audio(tmp_path / "nope.wav"), "not found")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    expect_user_error(lambda: audio.load_audio(tmp_path / "empty.wav"), "cannot read")


def test_zero_length_wav(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), SR)
    expect_user_error(lambda: audio.load_audio(tmp_path / "zero.wav"), "empty")


def test_corrupt_wav(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, speech_like(1.0), SR)
    data = bytearray(good.read_bytes())
    data[8:16] = b"GARBAGE!"  # break the RIFF/WAVE header
    (tmp_path / "corrupt.wav").write_bytes(bytes(data))
    expect_user_error(lambda: audio.load_audio(tmp_path / "corrupt.wav"), "cannot read")


def test_truncated_wav_reads_what_is_there(tmp_path):
    """Documented fallback: a WAV cut short (e.g. an interrupted recording) yields the samples present."""
    good = tmp_path / "good.wav"
    sf.write(good, speech_like(2.0), SR, subtype="PCM_16")
    data = good.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + SR * 2])  # header + first second
    wav = audio.load_audio(tmp_path / "cut.wav")
    assert abs(wav.size - SR) < 10


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 50)
    expect_user_error(lambda: audio.load_audio(tmp_path / "notes.wav"), "notes.wav", "cannot read")


def test_silent_audio(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(SR, np.float32), SR)
    expect_user_error(lambda: audio.load_audio(tmp_path / "silence.wav"), "silent")


def test_too_short(tmp_path):
    sf.write(tmp_path / "short.wav", speech_like(0.2), SR)
    expect_user_error(lambda: audio.load_audio(tmp_path / "short.wav"), "too short", "0.3")


def test_nan_samples():
    wav = speech_like(1.0)
    wav[100] = np.nan
    expect_user_error(lambda: audio.prepare_waveform(wav, SR), "invalid")


def test_max_seconds_reads_only_the_start(tmp_path):
    sf.write(tmp_path / "long.wav", speech_like(5.0), SR)
    assert audio.load_audio(tmp_path / "long.wav", max_seconds=2.0).size == 2 * SR


def test_loudness_normalisation_reaches_target():
    import pyloudnorm

    quiet = 0.01 * speech_like(3.0)
    out = audio.normalize_loudness(quiet, -23.0)
    assert pyloudnorm.Meter(SR).integrated_loudness(out.astype(np.float64)) == pytest.approx(-23.0, abs=0.5)
    loud = 50 * speech_like(3.0)
    assert np.max(np.abs(audio.normalize_loudness(loud, -5.0))) <= 0.99 + 1e-6


def test_chunk_spans_tile_the_clip():
    spans = audio.chunk_spans(10_003, 2000, 64)
    kept = [i for _, _, ks, ke in spans for i in range(ks, ke)]
    assert kept == list(range(10_003))
    assert all(rs <= ks and ke <= re_ for rs, re_, ks, ke in spans)
    assert spans[1][0] == 2000 - 64


def test_pad_frames_wraps_to_minimum_and_multiple():
    import torch

    mel = torch.arange(30.0).reshape(1, 30)
    padded, t = audio.pad_frames(mel, multiple=4, minimum=81)
    assert t == 30 and padded.shape[-1] == 84
    assert torch.equal(padded[0, 30:60], mel[0])  # wrapped, not zero-filled


def test_save_audio_rejects_unknown_extension(tmp_path):
    expect_user_error(lambda: audio.save_audio(tmp_path / "x.mp3", speech_like(1.0)), ".wav")


@pytest.mark.parametrize("chunk", [50, 123])
def test_a_long_clip_mel_in_pieces_is_exactly_the_whole_mel(monkeypatch, chunk):
    x = np.concatenate([speech_like(3.1, seed=i) for i in range(3)])[:-137]  # not a whole number of hops
    whole = audio.log_mel(x)
    monkeypatch.setattr(audio, "MEL_CHUNK_FRAMES", chunk)
    pieces = audio.log_mel(x)
    assert pieces.shape == whole.shape == (80, x.size // audio.HOP + 1)
    assert torch.equal(pieces, whole)
    batch = np.stack([x, x[::-1].copy()])
    assert torch.equal(audio.log_mel(batch)[1], audio.log_mel(batch[1]))



def one_formant_voice(formant_hz: float, f0: float = 120.0) -> np.ndarray:
    """1 s of harmonics of f0 under one formant (a Gaussian bump, 250 Hz wide) at formant_hz."""
    t = np.arange(SR) / SR
    ks = np.arange(1, int(8000 / f0))
    amps = np.exp(-0.5 * ((ks * f0 - formant_hz) / 250.0) ** 2) + 0.01
    return (0.3 * sum(a * np.sin(2 * np.pi * k * f0 * t) for k, a in zip(ks, amps)) / amps.sum()).astype(np.float32)


def test_formant_warp_moves_the_envelope_and_keeps_the_harmonics():
    """A 120 Hz voice with one formant: warped by `factor`, its envelope peaks where the same voice
    with the formant `factor` times higher does, and its harmonics (the fine structure) stay."""
    voice = one_formant_voice
    mel = audio.log_mel(voice(1000.0))
    assert torch.equal(audio.warp_formants(mel, 1.0), mel)
    lifter = audio._envelope_lifter("cpu")
    for factor in (1.26, 0.8):
        warped = audio.warp_formants(mel, factor)
        target = audio.log_mel(voice(1000.0 * factor))
        peak = lambda m: int((lifter @ m).mean(1).argmax())  # noqa: E731
        # measured: 1,000 Hz at bin 24; x1.26: 28 (the voice with its formant there: 27), x0.8: 20 (22)
        moved = (peak(warped) - peak(mel)) * np.sign(factor - 1)
        assert abs(peak(warped) - peak(target)) <= 2 and moved >= 3, factor
        fine = lambda m: (m - lifter @ m).mean(1)[:20].numpy()  # noqa: E731  the harmonics below ~600 Hz
        assert np.corrcoef(fine(warped), fine(mel))[0, 1] > 0.95  # 1.000 measured; a plain stretch gave 0.26
        assert warped.shape == mel.shape and torch.isfinite(warped).all()


def test_speech_envelope_ignores_pauses_and_match_envelope_moves_it():
    """The envelope is the voice's, whatever the pauses; matching moves a voice's envelope onto
    another's (within the per-band limit) and keeps its fine structure."""
    low, high = one_formant_voice(800.0), one_formant_voice(2000.0, f0=210.0)
    rng = np.random.default_rng(0)
    paused = np.concatenate([low, 1e-4 * rng.standard_normal(SR).astype(np.float32)])  # a second of room hiss
    env_low, env_high = audio.speech_envelope(audio.log_mel(low)), audio.speech_envelope(audio.log_mel(high))
    assert env_low.shape == (80,)
    assert (audio.speech_envelope(audio.log_mel(paused)) - env_low).abs().max() < 0.05
    assert (env_low - env_high).abs().max() > 0.5  # different voices (in normalised log-mel units)

    mel = audio.log_mel(low)
    assert torch.equal(audio.match_envelope(mel, env_high, 0.0), mel)
    matched = audio.match_envelope(mel, env_high, 1.0, max_db=200.0)
    assert (audio.speech_envelope(matched) - env_high).abs().max() < 1e-3
    half = audio.match_envelope(mel, env_high, 0.5, max_db=200.0)
    assert torch.allclose(audio.speech_envelope(half), (env_low + env_high) / 2, atol=1e-3)
    lifter = audio._envelope_lifter("cpu")
    assert torch.allclose(matched - lifter @ matched, mel - lifter @ mel, atol=1e-4)  # the harmonics stay
    limited = audio.match_envelope(mel, env_high, 1.0, max_db=6.0)
    assert (limited - mel).abs().max() <= 6.0 / audio.MEL_UNIT_DB + 1e-6


def test_near_register_line_is_two_semitones_either_side_of_the_male_below_line():
    line = audio.MALE_BELOW_HZ
    assert audio.near_register_line(line) and audio.near_register_line(line * 2 ** (1.9 / 12))
    assert audio.near_register_line(line * 2 ** (-1.9 / 12))
    assert not audio.near_register_line(line * 2 ** (2.1 / 12)) and not audio.near_register_line(line * 2 ** (-2.1 / 12))
    assert not audio.near_register_line(float("nan"))
