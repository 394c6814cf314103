"""Engine: the four tasks, styles, batching, chunked long audio, devices and user errors."""
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import core.engine as engine_module
from core import audio
from core.engine import Audio, Engine, Style, resolve_device
from core.errors import UserError
from tests.conftest import SR, speech_like


def test_four_tasks_give_outputs_of_the_right_size(engine, media):
    size = engine.cfg.img_size
    assert engine.face_from_voice(media / "face.png", media / "voice.wav").size == (size, size)
    assert engine.face_from_face(media / "face.png", media / "face64.png").size == (size, size)
    src = sf.read(media / "voice.wav")[0]
    out = engine.voice_from_face(media / "voice.wav", media / "face.png")
    assert out.dtype == np.float32 and out.shape == src.shape
    out = engine.voice_from_voice(media / "voice.wav", media / "voice2.wav")
    assert out.shape == src.shape and np.isfinite(out).all()


def test_inputs_in_memory_and_at_other_rates(engine):
    img = Image.new("RGBA", (80, 100), (10, 200, 30, 255))
    wav44 = speech_like(1.0, rate=44100)
    out = engine.voice_from_face(Audio(wav44, 44100), img, gender="male")
    assert out.shape == (SR,)


def test_batches_match_single_items(engine, media):
    """Three sources with batch size 2 (two batches) give exactly the single-item results."""
    faces = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)) for i in range(3)]
    style = engine.style_of_voice(media / "voice.wav", "female")
    batch = engine.face_from_style(faces, style)
    assert len(batch) == 3
    for img, out in zip(faces, batch):
        single = np.asarray(engine.face_from_style(img, style), dtype=int)
        assert np.abs(np.asarray(out, dtype=int) - single).max() <= 1


def test_one_style_per_source(engine, media):
    faces = [media / "face.png", media / "face64.png"]
    styles = [engine.sample_style("female", 1), engine.sample_style("male", 2)]
    out = engine.face_from_style(faces, styles)
    assert len(out) == 2
    with pytest.raises(UserError, match="3 styles for 2"):
        engine.face_from_style(faces, styles + styles[:1])


def test_latent_styles_are_seeded_and_per_domain(engine):
    a, b = engine.sample_style("female", 7), engine.sample_style("female", 7)
    assert np.array_equal(a.vector, b.vector) and a.seed == 7 and a.source == "latent"
    assert not np.allclose(a.vector, engine.sample_style("female", 8).vector)
    assert not np.allclose(a.vector, engine.sample_style("male", 7).vector)
    speaker = engine.cfg.speakers[1]
    assert engine.sample_style(speaker, 0).domain == speaker
    assert engine.sample_style(3, 0).domain == engine.domains[3]
    with pytest.raises(UserError, match="unknown domain"):
        engine.sample_style("robot", 0)
    with pytest.raises(UserError, match="out of range"):
        engine.sample_style(99, 0)


def test_style_interpolation_ends_at_its_endpoints(engine):
    a, b = engine.sample_style("female", 1), engine.sample_style("male", 1)
    assert np.allclose(a.mix(b, 0.0).vector, a.vector) and np.allclose(a.mix(b, 1.0).vector, b.vector)
    assert engine.face_from_style(Image.new("RGB", (64, 64)), a.mix(b, 0.5)).size == (64, 64)


def test_styles_of_references(engine, media):
    s = engine.style_of_face(media / "face.png")
    assert s.vector.shape == (engine.cfg.style_dim,) and s.source == "face"
    # the estimated gender picks the same head as asking for that gender, and the other head differs
    np.testing.assert_allclose(engine.style_of_face(media / "face.png", s.gender).vector, s.vector, atol=1e-6)
    other = "male" if s.gender == "female" else "female"
    assert not np.allclose(engine.style_of_face(media / "face.png", other).vector, s.vector)
    v = engine.style_of_voice(media / "voice.wav", "male")
    assert v.gender == "male" and v.source == "voice"
    with pytest.raises(UserError, match="gender must be"):
        engine.style_of_voice(media / "voice.wav", "robot")


def test_a_conversion_that_misses_its_register_is_retried_and_the_nearest_kept(engine, monkeypatch):
    """_land_register: within LANDING_TOLERANCE nothing is redone; else the retry toward the goal
    converts the clip's head, the other too if that one misses, and the transposition that lands
    nearest converts the whole clip."""
    monkeypatch.setattr(engine_module, "LANDING_SECONDS", 0.5)
    lands_at = {5: 120.0, 1: 130.0, 9: 190.0}  # Hz that G_A "lands" on for each transposition
    calls = []

    def convert(wav, s, target, steps):
        calls.append((wav.size, steps))
        return speech_like(wav.size / SR, f0=lands_at[steps])

    monkeypatch.setattr(engine, "_convert_voice", convert)
    wav, style = speech_like(1.5), engine.sample_style("female", 0)
    first = speech_like(1.5, f0=lands_at[5])
    out = engine._land_register(wav, None, style, 5, first, goal=200.0)
    assert calls == [(SR // 2, 9), (wav.size, 9)]  # up first (120 Hz is below 200), and it lands
    assert audio.median_f0([out]) == pytest.approx(190.0, rel=0.05) and out.size == wav.size
    calls.clear()
    lands_at[9] = 150.0  # up misses too: down is tried, and the nearest of the three kept
    engine._land_register(wav, None, style, 5, first, goal=200.0)
    assert calls == [(SR // 2, 9), (SR // 2, 1), (wav.size, 9)]
    calls.clear()
    assert engine._land_register(wav, None, style, 5, first, goal=125.0) is first and calls == []  # 0.7 st off
    lands_at[1] = lands_at[9] = 100.0  # no retry does better: the first conversion stays
    assert engine._land_register(wav, None, style, 5, first, goal=200.0) is first
    assert calls == [(SR // 2, 9), (SR // 2, 1)]
    calls.clear()
    lands_at[8] = 100.0  # at +12 the upward retry would be +12 again: only -4 (to +8) is tried
    assert engine._land_register(wav, None, style, 12, first, goal=400.0) is first
    assert calls == [(SR // 2, 8)]


def test_a_voice_without_a_given_gender_gets_the_head_of_its_register(engine):
    for f0, gender in ((110.0, "male"), (230.0, "female")):
        voice = speech_like(1.5, f0=f0)
        s = engine.style_of_voice(voice)
        assert s.gender == gender
        np.testing.assert_allclose(engine.style_of_voice(voice, gender).vector, s.vector, atol=1e-6)
    assert audio.gender_from_f0(audio.median_f0([np.zeros(SR, np.float32)])) is None  # unvoiced: C_A's head decides
    assert engine.style_of_voice(np.zeros(SR, np.float32) + 1e-3 * np.random.default_rng(0).standard_normal(SR)
                                 .astype(np.float32)).gender in engine.cfg.genders


def test_faces_from_a_voice_keep_the_voices_gender(engine, media, monkeypatch):
    """A face the read-out is not sure is of the voice's gender is made again with the style pushed
    along the gender axis (female mean latent style minus male); faces from other styles are left alone."""
    import torch

    genders, dim = engine.cfg.genders, engine.nets["style_encoder_image"].shared.out_dim

    def every_face_reads(gender):  # a read-out that is certain of one gender whatever the face
        bias = torch.full((len(genders),), -20.0)
        bias[genders.index(gender)] = 20.0
        return torch.zeros(len(genders), dim), bias

    sources = [media / "face.png", media / "face64.png", media / "face.png"]  # 3: over the batch of 2
    voice = engine.style_of_voice(speech_like(1.5, f0=230.0))
    assert voice.gender == "female" and voice.source == "voice"
    as_array = lambda faces: np.stack([np.asarray(f) for f in faces])  # noqa: E731
    plain = as_array(engine.face_from_style(sources, voice, hold_gender=False))
    monkeypatch.setattr(engine, "face_gender", every_face_reads("female"))
    np.testing.assert_array_equal(as_array(engine.face_from_style(sources, voice)), plain)  # sure already: kept
    monkeypatch.setattr(engine, "face_gender", every_face_reads("male"))
    means = engine._gender_mean_styles().numpy()
    axis = means[genders.index("female")] - means[genders.index("male")]
    pushed = Style((voice.vector + axis).astype(np.float32), "female", "latent")
    never_sure = as_array(engine.face_from_style(sources, voice))  # every step tried: the last is a whole axis
    np.testing.assert_allclose(never_sure, as_array(engine.face_from_style(sources, pushed)), atol=1)
    assert np.abs(never_sure.astype(int) - plain).mean() > 1
    from_a_face = Style(voice.vector, "female", "face")
    np.testing.assert_array_equal(as_array(engine.face_from_style(sources, from_a_face)), plain)


def test_the_first_push_the_read_out_is_sure_of_is_kept(engine, media, monkeypatch):
    """Of the gender hold's pushes, the first whose face the read-out is sure of stays, not a later one."""
    import torch

    from core import engine as engine_module
    from core.face import tensor_to_image

    genders = engine.cfg.genders
    voice = engine.style_of_voice(speech_like(1.5, f0=230.0))
    means = engine._gender_mean_styles()
    axis = means[genders.index("female")] - means[genders.index("male")]
    G = engine.nets["generator_image"]
    with torch.inference_mode():
        source = G.encode_source(engine._face_tensor(media / "face.png")[None])
        snapped = torch.as_tensor(engine.snap_to_faces(voice).vector)
        second, third = (G.decode_with_style(source, (snapped + t * axis)[None]) for t in engine_module.GENDER_STEPS[1:3])

    def sure_of_the_second_and_third_push_only(faces):
        near = torch.stack([(faces - f).abs().flatten(1).mean(1) < 1e-3 for f in (second, third)]).any(0)
        female = torch.where(near, 1.0, 0.5)
        return torch.stack([female if g == "female" else 1 - female for g in genders], 1)

    monkeypatch.setattr(engine, "face_gender", (None, None))  # a read-out is present ...
    monkeypatch.setattr(engine, "_face_gender_probs", sure_of_the_second_and_third_push_only)  # ... and reads so
    made = np.asarray(engine.face_from_style(media / "face.png", voice)).astype(int)
    assert np.abs(made - np.asarray(tensor_to_image(second[0]))).max() <= 1
    assert np.abs(made - np.asarray(tensor_to_image(third[0]))).mean() > 0.5


def test_source_faces_from_files_are_encoded_once_until_they_change(engine, tmp_path, monkeypatch):
    import os

    path = tmp_path / "avatar.png"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(path)
    style = engine.sample_style("female", 0)
    reads, read = [], engine._face_tensor
    monkeypatch.setattr(engine, "_face_tensor", lambda img: reads.append(img) or read(img))
    first = np.asarray(engine.face_from_style(path, style))
    again = [np.asarray(f) for f in engine.face_from_style([path, str(path)], style)]
    assert len(reads) == 1 and all(np.abs(f.astype(int) - first).max() <= 1 for f in again)  # a batch of 2: rounding
    Image.new("RGB", (64, 64), (40, 90, 160)).save(path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = np.asarray(engine.face_from_style(path, style))
    assert len(reads) == 2 and np.abs(changed.astype(int) - first).mean() > 1
    with Image.open(path) as img:
        in_memory = np.asarray(engine.face_from_style(img.copy(), style))  # not a file: read every time
    assert len(reads) == 3 and np.abs(in_memory.astype(int) - changed).max() <= 1


def test_short_reference_voice_is_padded_for_the_style_encoder(engine):
    s = engine.style_of_voice(speech_like(0.4), "female")  # 41 frames < the 80 E_A needs
    assert np.isfinite(s.vector).all()
    with pytest.raises(UserError, match="too short"):
        engine.style_of_voice(speech_like(0.2), "female")


def test_wrong_style_size_is_a_user_error(engine, media):
    with pytest.raises(UserError, match="style vector"):
        engine.face_from_style(media / "face.png", Style(np.zeros(10, np.float32), "female", "mix"))


def test_long_source_is_converted_in_chunks(engine, monkeypatch):
    wav, style = speech_like(4.0), engine.sample_style("female", 0)
    mel = engine._mel(engine.read_voice(wav))
    whole = engine._convert_mel(mel, engine._style_tensor([style], 1))
    other_style = engine._convert_mel(mel, engine._style_tensor([engine.sample_style("male", 3)], 1))
    monkeypatch.setattr(engine_module, "CHUNK_FRAMES", 100)  # 1.25 s chunks (+ context) on a 4 s clip
    chunked = engine._convert_mel(mel, engine._style_tensor([style], 1))
    assert chunked.shape == whole.shape == mel.shape
    # instance norm sees a chunk, not the clip, so they differ a little: measured 0.12 of what a
    # change of style makes (tiny untrained model)
    assert (chunked - whole).abs().mean() < 0.2 * (other_style - whole).abs().mean()
    out = engine.voice_from_style(wav, style)
    assert out.shape == wav.shape and np.isfinite(out).all()


def test_sources_over_the_limit_are_refused_not_cut(engine, monkeypatch, tmp_path):
    monkeypatch.setattr(engine_module, "MAX_SOURCE_SECONDS", 3.0)
    sf.write(tmp_path / "long.wav", speech_like(4.0), SR)
    style = engine.sample_style("female", 0)
    with pytest.raises(UserError, match="minutes are converted, so split it"):
        engine.voice_from_style(tmp_path / "long.wav", style)
    with pytest.raises(UserError, match="the recording is"):
        engine.voice_from_style(Audio(speech_like(4.0), SR), style)
    assert engine.voice_from_style(speech_like(2.5), style).shape == (int(2.5 * SR),)  # under it: converted whole


PEAK_MEMORY_PROBE = """
import resource, sys
import numpy as np
from core.engine import Engine
engine = Engine(align_faces=False)
engine.load(sys.argv[1], "cpu")
engine.voice_from_voice(sys.argv[2], sys.argv[2])  # warm up on the short clip
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = engine.voice_from_voice(sys.argv[3], sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(out), bool(np.isfinite(out).all()), (after - before) / 1024)
"""


@pytest.mark.slow
def test_ten_minute_source_is_converted_in_bounded_memory(tiny_checkpoint, media, tmp_path):
    import subprocess
    import sys

    wav = np.tile(speech_like(2.0), 5 * 60 + 15)  # 10.5 minutes
    sf.write(tmp_path / "long.wav", wav, SR, subtype="PCM_16")
    r = subprocess.run([sys.executable, "-c", PEAK_MEMORY_PROBE, str(tiny_checkpoint), str(media / "voice.wav"),
                        str(tmp_path / "long.wav")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    samples, finite, grew_mb = r.stdout.split()
    assert int(samples) == wav.size and finite == "True"
    # the clip is 60 MB as float32. Measured growth 832 MB: reading it (~230), the mel in pieces
    # (~170; one float64 STFT of the whole clip made it 2139 MB), pyloudnorm's float64 filtering
    # (~300); the model and vocoder run in chunks and add nothing that grows with the clip
    assert float(grew_mb) < 1000, f"peak memory grew by {grew_mb} MB"


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_no_model_loaded_and_no_default_model(tmp_path, monkeypatch, media):
    with pytest.raises(UserError, match="no model is loaded"):
        Engine().face_from_voice(media / "face.png", media / "voice.wav")
    monkeypatch.setattr(engine_module, "DEFAULT_CHECKPOINT", tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="xfavot init"):
        Engine().load()


def test_empty_source_list(engine, media):
    with pytest.raises(UserError, match="no inputs"):
        engine.face_from_voice([], media / "voice.wav")


def test_conversion_toward_a_voice_matches_its_envelope(engine, monkeypatch):
    """A voice reference carries its timbre (speech_envelope); the converted mel is equalised onto
    it before the vocoder (ENVELOPE_MATCH), while styles of faces and latents carry none."""
    import torch

    heard = []  # the mels the vocoder is given
    vocoder = engine.vocoder
    monkeypatch.setattr(engine, "vocoder", lambda mel: heard.append(mel.clone()) or vocoder(mel))
    reference = speech_like(1.5, f0=220.0, seed=4)
    voice = engine.style_of_voice(reference)
    assert voice.envelope.shape == (80,)
    heard_reference = audio.normalize_loudness(reference)  # at the corpora's loudness (Engine._speech)
    np.testing.assert_allclose(voice.envelope, audio.speech_envelope(audio.log_mel(heard_reference)).numpy(), atol=1e-5)
    assert engine.sample_style("female", 0).envelope is None
    source = speech_like(1.0, f0=120.0, seed=5)
    mels = {}
    for strength in (0.0, 1.0):
        monkeypatch.setattr(engine_module, "ENVELOPE_MATCH", strength)
        heard.clear()
        engine.voice_from_style(source, voice)
        mels[strength] = heard[-1]
    # one fixed gain a band, every frame: the way to the reference's envelope, at most 12 dB
    limit = 12.0 / audio.MEL_UNIT_DB
    gain = (torch.from_numpy(voice.envelope) - audio.speech_envelope(mels[0.0])).clamp(-limit, limit)
    torch.testing.assert_close(mels[1.0] - mels[0.0], gain[:, None].expand_as(mels[0.0]), atol=1e-4, rtol=0)
    distance = {k: float((audio.speech_envelope(m) - torch.from_numpy(voice.envelope)).abs().mean()) for k, m in mels.items()}
    assert distance[1.0] < 0.5 * distance[0.0]  # measured 0.82 -> 0.27 (the tiny untrained G_A is far off in places)


def test_conversion_toward_a_voice_pushes_its_style_away_from_the_source(engine, monkeypatch):
    """Toward a voice reference G_A reads s_ref + STYLE_PUSH (s_ref - s_source); toward a face or a
    latent sample the style as it is."""
    import torch

    read = []  # the styles G_A is given
    generator = engine.nets["generator_audio"]
    monkeypatch.setattr(generator, "forward", lambda x, s, f0, _f=generator.forward: read.append(s.clone()) or _f(x, s, f0))
    source = speech_like(1.0, f0=120.0, seed=5)
    voice = engine.style_of_voice(speech_like(1.5, f0=220.0, seed=4))
    own = torch.from_numpy(engine.style_of_voice(source).vector)
    engine.voice_from_style(source, voice, transpose=False)
    reference = torch.from_numpy(voice.vector)
    torch.testing.assert_close(read[-1][0], reference + engine_module.STYLE_PUSH * (reference - own))
    assert engine_module.STYLE_PUSH > 0 and not torch.allclose(read[-1][0], torch.from_numpy(voice.vector))
    latent = engine.sample_style("female", 3)
    engine.voice_from_style(source, latent, transpose=False)
    torch.testing.assert_close(read[-1][0], torch.from_numpy(latent.vector))


def test_conversions_and_styles_do_not_depend_on_the_input_level(engine, monkeypatch):
    """Sources and references are brought to the corpora's loudness first (Engine._speech): a
    quiet microphone gives what a loud one gives."""
    heard = []  # the mels the vocoder is given
    vocoder = engine.vocoder
    monkeypatch.setattr(engine, "vocoder", lambda mel: heard.append(mel.clone()) or vocoder(mel))
    source, reference = speech_like(1.5, f0=120.0, seed=5), speech_like(1.5, f0=220.0, seed=4)
    style, quiet_style = engine.style_of_voice(reference), engine.style_of_voice(0.03 * reference)
    np.testing.assert_allclose(quiet_style.vector, style.vector, atol=1e-4)
    engine.voice_from_style(0.03 * source, style, transpose=False)
    engine.voice_from_style(source, style, transpose=False)
    quiet, loud = heard[-2:]
    assert (quiet - loud).abs().max() < 1e-3
