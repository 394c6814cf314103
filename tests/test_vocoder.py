"""Vocoder wrapper: Griffin-Lim fallback, our own format, the official parallel-wavegan format."""
import pickle

import numpy as np
import pytest
import torch
import yaml

from core import audio
from core.compat import parallel_wavegan
from core.errors import UserError
from core.vocoder import Vocoder, build_generator, load_vocoder, save_vocoder
from tests.conftest import speech_like

HIFIGAN = {"generator_type": "HiFiGANGenerator", "generator_params": dict(
    in_channels=80, out_channels=1, channels=32, kernel_size=7, upsample_scales=[5, 5, 4, 3],
    upsample_kernel_sizes=[10, 10, 8, 6], resblock_kernel_sizes=[3], resblock_dilations=[[1, 3]])}
PWG = {"generator_type": "ParallelWaveGANGenerator", "generator_params": dict(
    layers=3, stacks=1, residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=80,
    aux_context_window=2, upsample_params={"upsample_scales": [5, 5, 4, 3]})}


def test_scipy_compat_lets_parallel_wavegan_import():
    pwg = parallel_wavegan()
    from parallel_wavegan.layers import PQMF

    assert PQMF(subbands=4).analysis_filter.shape[0] == 4
    assert hasattr(pwg.models, "HiFiGANGenerator")


def test_griffin_lim_round_trip_keeps_length_and_spectrum():
    wav = speech_like(2.0)
    mel = audio.log_mel(wav)
    out = Vocoder.griffin_lim()(mel)
    assert out.shape == (mel.shape[-1] * audio.HOP,)
    resynth = audio.log_mel(out[: wav.size].numpy())
    other_voice = audio.log_mel(speech_like(2.0, f0=230, seed=5))
    err = (resynth - mel).abs().mean().item()
    assert err < 0.25 and err < 0.5 * (other_voice - mel).abs().mean().item()


def test_griffin_lim_on_untrained_generator_output_has_right_length(engine):
    """An untrained model's converted mel still vocodes to audio of the source's length."""
    wav = speech_like(1.3)
    out = engine.voice_from_voice(wav, speech_like(1.0, f0=220))
    assert out.shape == wav.shape and np.isfinite(out).all() and np.abs(out).max() > 0


@pytest.mark.parametrize("spec", [HIFIGAN, PWG], ids=["hifigan", "pwg"])
def test_own_format_round_trip(tmp_path, spec):
    torch.manual_seed(0)
    gen = build_generator(spec["generator_type"], spec["generator_params"])
    save_vocoder(tmp_path / "voc.safetensors", gen, {**spec, "frontend": "xfavot24k"})
    voc = load_vocoder(tmp_path / "voc.safetensors")
    assert voc.kind == "neural"
    mel = audio.log_mel(speech_like(1.0))
    out = voc(mel)
    assert out.shape == (mel.shape[-1] * audio.HOP,) and torch.isfinite(out).all()
    # the loaded weights are the saved ones: the same mel makes the same waveform
    # the loaded vocoder is the saved one: same mel (and, for PWG, same noise) -> same waveform
    original = Vocoder(gen, "xfavot24k", "original")
    torch.manual_seed(1)
    expected = original(mel)
    torch.manual_seed(1)
    torch.testing.assert_close(voc(mel), expected)
    batch = voc(torch.stack([mel, mel]))
    assert batch.shape == (2, mel.shape[-1] * audio.HOP)


def test_vocos_phase_iterations_make_the_heads_magnitudes_consistent(tmp_path):
    """Griffin-Lim from the head's phase: the waveform's own STFT moves toward the head's magnitudes,
    and the file's config says how many steps the Vocoder takes (none unless it says so)."""
    torch.manual_seed(0)
    spec = {"generator_type": "VocosGenerator", "generator_params": dict(dim=32, intermediate_dim=64, num_layers=1)}
    gen = build_generator(spec["generator_type"], spec["generator_params"]).eval()
    mel = audio.log_mel(speech_like(1.0))[None]

    def inconsistency(iterations):
        with torch.no_grad():
            wav, magnitude = gen.synthesize(mel, iterations)
            return ((gen.stft(wav).abs() - magnitude).abs().mean() / magnitude.mean()).item()

    assert inconsistency(16) < 0.5 * inconsistency(0)
    save_vocoder(tmp_path / "plain.safetensors", gen, {**spec, "frontend": "xfavot24k"})
    save_vocoder(tmp_path / "refined.safetensors", gen, {**spec, "frontend": "xfavot24k", "phase_iterations": 16})
    plain, refined = load_vocoder(tmp_path / "plain.safetensors"), load_vocoder(tmp_path / "refined.safetensors")
    assert (plain.phase_iterations, refined.phase_iterations) == (0, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain(mel[0]), gen(mel)[0, 0])
        torch.testing.assert_close(refined(mel[0]), gen(mel, 16)[0, 0])


def test_long_mel_is_vocoded_in_chunks_with_exact_length(tmp_path, monkeypatch):
    import core.vocoder as vocoder_module

    torch.manual_seed(0)
    gen = build_generator(HIFIGAN["generator_type"], HIFIGAN["generator_params"])
    voc = Vocoder(gen, "xfavot24k", "test")
    mel = audio.log_mel(speech_like(3.0))
    whole = voc(mel)
    monkeypatch.setattr(vocoder_module, "CHUNK_FRAMES", 40)
    chunked = voc(mel)
    assert chunked.shape == whole.shape
    # HiFiGAN's receptive field is wider than the 16-frame context, so seams differ slightly
    assert torch.corrcoef(torch.stack([whole, chunked]))[0, 1] > 0.99


def write_official(tmp_path, spec, state):
    d = tmp_path / "official"
    d.mkdir()
    torch.save({"model": {"generator": state, "discriminator": {}}, "steps": 400000}, d / "checkpoint-400000steps.pkl")
    (d / "config.yml").write_text(yaml.safe_dump({**spec, "sampling_rate": 24000, "hop_size": 300}))
    return d / "checkpoint-400000steps.pkl"


def test_official_parallel_wavegan_format_loads(tmp_path):
    torch.manual_seed(0)
    gen = build_generator(PWG["generator_type"], PWG["generator_params"])
    path = write_official(tmp_path, PWG, gen.state_dict())
    voc = load_vocoder(path)
    assert voc.frontend == "stargan_vc_compat" and voc.kind == "neural"
    assert voc(torch.zeros(80, 20)).shape == (6000,)


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/xfavot-pwned",))


def test_official_format_never_runs_pickled_code(tmp_path):
    import os

    d = tmp_path / "evil"
    d.mkdir()
    with open(d / "checkpoint.pkl", "wb") as f:
        pickle.dump({"model": {"generator": Exploit()}}, f)
    (d / "config.yml").write_text(yaml.safe_dump(PWG))
    if os.path.exists("/tmp/xfavot-pwned"):
        os.unlink("/tmp/xfavot-pwned")
    with pytest.raises(UserError, match="cannot read vocoder"):
        load_vocoder(d / "checkpoint.pkl")
    assert not os.path.exists("/tmp/xfavot-pwned")


def test_official_format_needs_its_config(tmp_path):
    (tmp_path / "checkpoint.pkl").write_bytes(b"x")
    with pytest.raises(UserError, match="config.yml"):
        load_vocoder(tmp_path / "checkpoint.pkl")


def test_wrong_hop_is_refused(tmp_path):
    spec = {**HIFIGAN, "generator_params": {**HIFIGAN["generator_params"], "upsample_scales": [8, 8, 2, 2],
                                            "upsample_kernel_sizes": [16, 16, 4, 4]}}
    gen = build_generator(spec["generator_type"], spec["generator_params"])
    path = write_official(tmp_path, spec, gen.state_dict())
    with pytest.raises(UserError, match="hop size 256"):
        load_vocoder(path)


def test_pretrained_download_offline_gives_a_clear_message(tmp_path):
    with pytest.raises(UserError) as info:
        Vocoder.load_pretrained("vctk_parallel_wavegan.v1", tmp_path)
    assert "internet" in str(info.value) and "\n" not in str(info.value)


def test_engine_vocoder_choice(tmp_path, tiny_checkpoint):
    """auto = the model's neural vocoder unless its recipe recorded Griffin-Lim as better."""
    from core import checkpoint
    from core.engine import Engine
    from training.vocoder import attach_vocoder

    gen = build_generator(HIFIGAN["generator_type"], HIFIGAN["generator_params"])
    save_vocoder(tmp_path / "voc.safetensors", gen, {**HIFIGAN, "frontend": "xfavot24k"})
    with_vocoder = tmp_path / "m.safetensors"
    attach_vocoder(tiny_checkpoint, tmp_path / "voc.safetensors", with_vocoder)
    engine = Engine(align_faces=False)
    kinds = {choice: engine.load(with_vocoder, "cpu", choice) and engine.vocoder.kind
             for choice in ("auto", "neural", "griffin-lim")}
    assert kinds == {"auto": "neural", "neural": "neural", "griffin-lim": "griffin-lim"}
    prefers_gl = tmp_path / "m2.safetensors"
    checkpoint.export_inference(with_vocoder, prefers_gl, meta={"preferred_vocoder": "griffin-lim"})
    assert engine.load(prefers_gl, "cpu").vocoder.startswith("Griffin-Lim") and engine.vocoder.kind == "griffin-lim"
    assert engine.load(prefers_gl, "cpu", "neural") and engine.vocoder.kind == "neural"
    with pytest.raises(UserError, match="unknown vocoder"):
        engine.load(prefers_gl, "cpu", "wavenet")
    # a model without a neural vocoder: auto falls back to Griffin-Lim, an explicit "neural" is refused
    assert engine.load(tiny_checkpoint, "cpu", "auto") and engine.vocoder.kind == "griffin-lim"
    with pytest.raises(UserError, match="has no neural vocoder"):
        engine.load(tiny_checkpoint, "cpu", "neural")
    assert engine.vocoder.kind == "griffin-lim"  # the failed switch left the loaded model as it was


def test_auto_vocoder_follows_resynthesis_unless_the_neural_one_rings_on_real_conversions():
    from training.vocoder import pick_vocoder

    neural_wins = {"preferred": "neural"}
    assert pick_vocoder(neural_wins) == "neural"
    assert pick_vocoder(neural_wins, {"neural": {"frame_rate_buzz": 0.10}, "griffin-lim": {"frame_rate_buzz": 0.05}}) == "neural"
    assert pick_vocoder(neural_wins, {"neural": {"frame_rate_buzz": 0.85}, "griffin-lim": {"frame_rate_buzz": 0.08}}) \
        == "griffin-lim"
    assert pick_vocoder({"preferred": "griffin-lim"}, {"neural": {"frame_rate_buzz": 0.0},
                                                      "griffin-lim": {"frame_rate_buzz": 0.0}}) == "griffin-lim"
