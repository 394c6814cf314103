"""Checkpoint format: bit-exact round trip, atomic writes, and every bad checkpoint the issue lists."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from core import checkpoint, config, model
from core.engine import Engine
from tests.conftest import expect_user_error


def test_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(1)
    cfg = config.preset("tiny")
    nets = model.build_networks(cfg)
    for p in nets.parameters():  # make every tensor distinctive
        p.data.add_(torch.randn_like(p) * 0.01)
    checkpoint.save_model(tmp_path / "m.safetensors", nets, cfg, {"steps": 123, "speakers_note": "x"})
    loaded, cfg2, meta, extra = checkpoint.load_model(tmp_path / "m.safetensors")
    assert cfg2 == cfg and meta["steps"] == 123 and extra == {}
    for name in model.MODULE_NAMES:
        a, b = nets[name].state_dict(), loaded[name].state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key}"


def test_fp16_storage_loads_as_float32(tmp_path):
    cfg = config.preset("tiny")
    nets = model.build_networks(cfg)
    checkpoint.save_model(tmp_path / "h.safetensors", nets, cfg, dtype=torch.float16)
    loaded, *_ = checkpoint.load_model(tmp_path / "h.safetensors")
    w = loaded["mapping"].shared[0].weight
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, nets["mapping"].shared[0].weight, atol=1e-2, rtol=1e-3)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"old")

    def boom(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        checkpoint.atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temp file left behind


def load_error(path, *words):
    return expect_user_error(lambda: Engine(align_faces=False).load(path, "cpu"), *words)


def test_missing_checkpoint(tmp_path):
    load_error(tmp_path / "none.safetensors", "not found")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "c.safetensors").write_bytes(os.urandom(4096))
    load_error(tmp_path / "c.safetensors", "damaged")


def test_truncated_checkpoint(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    load_error(tmp_path / "t.safetensors", "damaged or truncated")


def test_pickle_checkpoints_are_refused_without_unpickling(tmp_path):
    cfg = config.preset("tiny")
    torch.save(model.build_networks(cfg).state_dict(), tmp_path / "zip.safetensors")
    load_error(tmp_path / "zip.safetensors", "torch.save", "arbitrary code")
    sentinel = tmp_path / "pwned"
    for name in ("p.pt", "p.safetensors"):  # by name and by content
        with open(tmp_path / name, "wb") as f:
            pickle.dump({"a": _Exploit(sentinel)}, f)
        load_error(tmp_path / name, "pickle")
    assert not sentinel.exists()  # the payload never ran


class _Exploit:
    """Unpickling this runs a command: the file it touches shows whether anything unpickled it."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_a_safetensors_header_length_that_looks_like_a_pickle_opcode_still_loads(tmp_path):
    # the file starts with its header length (u64 LE); 0x80 0x03 is also pickle protocol 3's opening
    path = tmp_path / "m.safetensors"
    for pad in range(0, 2048, 8):
        checkpoint.save_tensors(path, {"x": torch.ones(2)}, {"format": "x", "pad": "a" * pad})
        if path.read_bytes()[:2] == b"\x80\x03":
            break
    assert path.read_bytes()[:2] == b"\x80\x03"
    tensors, header = checkpoint.load_tensors(path)
    assert torch.equal(tensors["x"], torch.ones(2)) and header["format"] == "x"


def test_plain_safetensors_without_our_header(tmp_path):
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    load_error(tmp_path / "other.safetensors", "not an XFaVoT checkpoint")


def test_checkpoint_of_another_preset_loads_with_its_own_config(tmp_path):
    cfg = config.preset("small", speakers=("alice", "bob"))
    checkpoint.save_model(tmp_path / "s.safetensors", model.build_networks(cfg), cfg)
    info = Engine(align_faces=False).load(tmp_path / "s.safetensors", "cpu")
    assert info.preset == "small" and info.speakers == ["alice", "bob"]


def test_weights_that_do_not_match_the_declared_preset(tmp_path):
    """A file whose header says tiny but whose tensors come from small (e.g. a botched merge)."""
    small = config.preset("small", speakers=("a",))
    checkpoint.save_model(tmp_path / "x.safetensors", model.build_networks(small), small)
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "x.safetensors"))
    header = checkpoint.read_header(tmp_path / "x.safetensors")
    header["config"] = config.preset("tiny", speakers=("a",)).to_dict()
    checkpoint.save_tensors(tmp_path / "x.safetensors", tensors, header)
    load_error(tmp_path / "x.safetensors", "does not match its own config", "tiny")


def test_checkpoint_without_inference_modules(tmp_path):
    cfg = config.preset("tiny")
    nets = model.build_networks(cfg)
    checkpoint.save_model(tmp_path / "d.safetensors", {"discriminator_image": nets["discriminator_image"]}, cfg)
    load_error(tmp_path / "d.safetensors", "lacks", "generator_image")


def test_newer_format_version_is_refused(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file

    header = checkpoint.read_header(tiny_checkpoint)
    header["version"] = 99
    checkpoint.save_tensors(tmp_path / "n.safetensors", load_file(str(tiny_checkpoint)), header)
    load_error(tmp_path / "n.safetensors", "newer")


def test_invalid_config_in_header(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file

    header = checkpoint.read_header(tiny_checkpoint)
    header["config"]["mel_frontend"] = "mp3"
    checkpoint.save_tensors(tmp_path / "bad.safetensors", load_file(str(tiny_checkpoint)), header)
    load_error(tmp_path / "bad.safetensors", "invalid model config")


def test_export_inference_keeps_what_the_engine_needs(tmp_path):
    import torch

    from core import checkpoint, config, model

    cfg = config.preset("tiny")
    nets = model.build_networks(cfg)
    trained = tmp_path / "trained.safetensors"
    extra = {"train.generator_image.x": torch.zeros(2), "optim.g.0.exp_avg": torch.zeros(2)}
    checkpoint.save_model(trained, nets, cfg, {"steps": 7, "optimizers": {"g": 1}}, extra=extra)
    base = tmp_path / "base.safetensors"
    checkpoint.save_model(base, {}, cfg, {"vocoder": {"kind": "hifigan"}, "preferred_vocoder": "griffin-lim"},
                          extra={"vocoder.w": torch.ones(3)})
    out = tmp_path / "shipped.safetensors"
    header = checkpoint.export_inference(trained, out, vocoder_from=base, dtype=torch.float16, meta={"name": "x"})
    tensors, _ = checkpoint.load_tensors(out)
    assert set(header["modules"]) == set(checkpoint.SHIPPED_MODULES)
    assert not any(k.startswith(("train.", "optim.", "discriminator_audio.", "content.")) for k in tensors)
    assert tensors["vocoder.w"].dtype == torch.float16 and header["meta"]["vocoder"] == {"kind": "hifigan"}
    assert header["meta"]["preferred_vocoder"] == "griffin-lim"  # the base's measurement of that vocoder
    assert header["meta"]["steps"] == 7 and header["meta"]["name"] == "x" and "optimizers" not in header["meta"]
    loaded, _, _, _ = checkpoint.load_model(out)
    assert set(loaded) == set(checkpoint.SHIPPED_MODULES)
