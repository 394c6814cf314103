"""Auxiliary networks and vocoder training: targets, official checkpoint formats, short runs."""
import shutil

import numpy as np
import pytest
import torch
import yaml

from core import audio
from core.content import ContentNet
from core.errors import UserError
from core.jdc import JDCNet
from tests.conftest import SR, speech_like
from training import auxiliary


def test_f0_track_follows_the_signal_on_the_mel_grid():
    wav = speech_like(1.0, f0=180.0)
    f0, voiced = audio.f0_track(wav)
    assert f0.shape == voiced.shape == (SR // 300 + 1,)
    assert voiced.mean() > 0.8
    assert abs(np.median(f0[voiced]) - 180.0) < 20  # the signal glides +-10 % around 180 Hz
    silence = np.concatenate([np.zeros(SR // 2, np.float32), wav[: SR // 2]])
    _, v2 = audio.f0_track(silence)
    assert not v2[: 30].any() and v2[-20:].mean() > 0.7


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_phoneme_vocabulary_round_trip():
    vocab = auxiliary.PhonemeVocabulary.from_texts(["Please bring three red baskets.", "We were away."], 80)
    ids = vocab.encode("We were away.")
    assert ids and all(0 < i < len(vocab.symbols) for i in ids)
    assert "".join(vocab.symbols[i] for i in ids).replace(" ", "") == auxiliary.phonemes("We were away.").replace(" ", "")
    with pytest.raises(UserError, match="phoneme symbols"):
        auxiliary.PhonemeVocabulary.from_texts(["Please bring three red baskets."], 5)


def test_official_jdc_and_asr_formats_load(tmp_path):
    jdc = JDCNet(64)
    torch.save({"net": jdc.state_dict()}, tmp_path / "bst.t7")
    loaded = auxiliary.load_official_jdc(tmp_path / "bst.t7")
    assert all(torch.equal(a, b) for a, b in zip(jdc.state_dict().values(), loaded.state_dict().values()))
    asr = ContentNet(80, 256, 6, 80)
    state = {**asr.state_dict(), "asr_s2s.embedding.weight": torch.zeros(80, 256)}  # the decoder we ignore
    torch.save({"model": state}, tmp_path / "epoch_00100.pth")
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"model_params": {"input_dim": 80, "hidden_dim": 256,
                                                                          "n_token": 80, "n_layers": 6}}))
    loaded = auxiliary.load_official_asr(tmp_path / "epoch_00100.pth")
    assert torch.equal(loaded.ctc_linear[2].linear_layer.weight, asr.ctc_linear[2].linear_layer.weight)
    torch.save({"net": {"nonsense": torch.zeros(1)}}, tmp_path / "bad.t7")
    with pytest.raises(UserError, match="not a StarGANv2-VC JDC"):
        auxiliary.load_official_jdc(tmp_path / "bad.t7")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_train_aux_and_vocoder_write_loadable_files(tmp_path, tiny_checkpoint):
    from core import checkpoint
    from core.config import preset
    from core.vocoder import load_vocoder
    from training.data import synth
    from training.data.datasets import load_synthetic
    from training.vocoder import train_vocoder

    synth.synthesize_corpus(tmp_path / "c", synth.SynthOptions(speakers=8, utts=2, faces=1, seed=1, engines=("espeak",)),
                            workers=2, progress=False)
    data = load_synthetic(tmp_path / "c")
    metrics = auxiliary.train_auxiliary(data, preset("tiny"), steps=3, out=tmp_path / "aux.safetensors", progress=False)
    assert {"f0_median_abs_error_hz", "voicing_accuracy", "phoneme_error_rate"} <= set(metrics)
    nets, cfg, meta, _ = checkpoint.load_model(tmp_path / "aux.safetensors")
    assert set(nets) == {"jdc", "content"} and meta["phonemes"][0] == "<blank>"
    # --init: a later stage starts from this JDC (0 steps: it comes back unchanged)
    auxiliary.train_auxiliary(data, preset("tiny"), steps=0, out=tmp_path / "same.safetensors", progress=False,
                              init=tmp_path / "aux.safetensors")
    same, _, _, _ = checkpoint.load_model(tmp_path / "same.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(nets["jdc"].state_dict().values(), same["jdc"].state_dict().values()))
    octaves = auxiliary.train_auxiliary(data, preset("tiny"), steps=2, out=tmp_path / "oct.safetensors", progress=False,
                                        init=tmp_path / "aux.safetensors", f0_loss="octaves")
    assert np.isfinite(octaves["f0_median_abs_error_hz"])
    result = train_vocoder(data, steps=2, out=tmp_path / "voc.safetensors", batch_size=2, adversarial_start=1,
                           checkpoint_every=1, progress=False)
    assert result["steps"] == 2 and np.isfinite(result["mel_l1"])
    by = result["by_vocoder"]  # a 2-step vocoder against Griffin-Lim, on the untouched clips' mels
    assert by["original"]["mel_l1"] < 1e-6 and by["griffin-lim"]["mel_l1"] < by["neural"]["mel_l1"]
    if by["original"]["dvector_similarity"] is not None:
        assert by["original"]["dvector_similarity"] > 0.99 and result["preferred"] == "griffin-lim"
    assert load_vocoder(tmp_path / "voc.safetensors").kind == "neural"

    # fine-tuning: from the vocoder embedded in a model, with each clip also as that model's G_A remakes it
    from training.vocoder import Segments, _gta_remaker, attach_vocoder, vocoder_state

    model = tmp_path / "with-vocoder.safetensors"
    attach_vocoder(tiny_checkpoint, tmp_path / "voc.safetensors", model)
    plain = Segments(data.split("train"), "xfavot24k", progress=False)
    gta = Segments(data.split("train"), "xfavot24k", progress=False, remake=_gta_remaker(model, torch.device("cpu")))
    assert len(gta.clips) == 2 * len(plain.clips)
    for (mel, wav), (remade, same) in zip(gta.clips[::2], gta.clips[1::2]):
        assert same is wav and remade.shape == mel.shape and not torch.allclose(remade, mel)
    result = train_vocoder(data, steps=1, out=tmp_path / "tuned.safetensors", batch_size=2, progress=False,
                           evaluate=False, init=model, gta_model=model, lr=1e-12)
    config, start = vocoder_state(model)
    tuned_config, tuned = vocoder_state(tmp_path / "tuned.safetensors")
    assert result["steps"] == 1 and "fine-tuned" in tuned_config["name"] and tuned_config["steps"] == 2 + 1
    for name, value in start.items():  # a step at lr 1e-12 leaves the weights it started from
        torch.testing.assert_close(tuned[name], value.float(), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="neither a vocoder file nor a model with a vocoder"):
        vocoder_state(tiny_checkpoint)
    # the head's magnitudes taught to be the waveform's own; the inference setting lands in the file
    train_vocoder(data, steps=1, out=tmp_path / "consistent.safetensors", batch_size=2, progress=False,
                  evaluate=False, init=model, magnitude_weight=20.0, phase_iterations=8)
    assert load_vocoder(tmp_path / "consistent.safetensors").phase_iterations == 8
    # a fine-tune of it keeps its inference setting unless told otherwise
    train_vocoder(data, steps=1, out=tmp_path / "again.safetensors", batch_size=2, progress=False, evaluate=False,
                  init=tmp_path / "consistent.safetensors")
    assert load_vocoder(tmp_path / "again.safetensors").phase_iterations == 8
    with pytest.raises(UserError, match="need a Vocos generator"):
        train_vocoder(data, steps=1, out=tmp_path / "hifigan.safetensors", kind="hifigan", batch_size=2,
                      progress=False, evaluate=False, magnitude_weight=1.0)
