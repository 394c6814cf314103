"""The trainer: a short run end to end, exact resume, Table 1 switching, SIGKILL recovery, DDP."""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import UserError
from training import objective
from training.config import train_preset
from training.data import synth
from training.data.datasets import load_synthetic
from training.trainer import Trainer

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-corpus")
    synth.synthesize_corpus(out, synth.SynthOptions(speakers=20, utts=2, faces=2, seed=5, engines=("espeak",)),
                            workers=2, progress=False)
    return out


def tiny(steps, **kw):
    # ds_iter pinned: by default it is the run's length, fixed when the run is created
    return train_preset("tiny", steps=steps, log_every=1, **{"checkpoint_every": 2, "sample_every": 100,
                                                             "val_every": 2, "ds_iter": 8, **kw})


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_short_run_logs_every_loss_and_writes_usable_checkpoints(corpus, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(load_synthetic(corpus), run, tiny(4, sample_every=4))
    result = trainer.run(progress=False)
    assert result["step"] == 4 and not result["stopped"]
    losses = [r for r in read_log(run) if "G/total" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    for r in losses:
        for key in ("D/img_adv", "D/img_r1", "D/aud_adv", "D/aud_r1", "D/con_reg", "D/src_cls", "G/img_adv",
                    "G/img_sty", "G/img_ds", "G/img_cyc", "G/aud_adv", "G/aud_sty", "G/aud_ds", "G/aud_cyc",
                    "G/f0", "G/asr", "G/norm", "G/src_cls"):
            assert np.isfinite(r[key]), key
    assert any("val/retrieval_top1" in r for r in read_log(run))
    assert sorted(p.name for p in run.glob("step-*.safetensors")) == ["step-000002.safetensors", "step-000004.safetensors"]
    assert (run / "samples" / "faces-from-voices-000004.png").is_file()
    assert (run / "samples" / "voice-from-face-000004.wav").is_file()
    assert any((run / "tb").iterdir())
    from core.engine import Engine

    engine = Engine(align_faces=False)
    info = engine.load(run / "step-000004.safetensors", "cpu")
    assert info.steps == 4 and info.speakers == [s.id for s in trainer.train_data.speakers if s.voices]
    src = next(s for s in trainer.train_data.speakers if s.faces).faces[0]
    voice = next(s for s in trainer.train_data.speakers if s.voices).voices[0]
    assert engine.face_from_voice(src, voice).size == (64, 64)


def test_resume_continues_exactly_like_an_uninterrupted_run(corpus, tmp_path):
    data = load_synthetic(corpus)
    straight = tmp_path / "straight"
    Trainer(data, straight, tiny(4)).run(progress=False)
    split = tmp_path / "split"
    Trainer(data, split, tiny(2)).run(progress=False)
    resumed = Trainer.resume(data, split, steps=4)
    assert resumed.step_no == 2
    resumed.run(progress=False)
    a = {r["step"]: r for r in read_log(straight) if "G/total" in r}
    b = {r["step"]: r for r in read_log(split) if "G/total" in r}
    for step in (3, 4):
        for key, value in a[step].items():
            if key != "time":
                assert b[step][key] == value, (step, key)


def test_a_run_stopped_before_its_curve_point_evaluates_it_on_resume(corpus, tmp_path, monkeypatch):
    from training import curve

    evaluated = []

    def fake_record(run_dir, path, step, hours, *rest):  # curve.record without the evaluation
        evaluated.append((step, path.name))
        if len(evaluated) == 1:
            raise RuntimeError("killed while evaluating")
        run_dir.curve.mkdir(parents=True, exist_ok=True)
        with open(run_dir.curve / "curve.jsonl", "a") as f:
            f.write(json.dumps({"step": step}) + "\n")
        return {"step": step}

    monkeypatch.setattr(curve, "record", fake_record)
    data, run = load_synthetic(corpus), tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        Trainer(data, run, tiny(4, eval_every=2, eval_corpus=str(corpus))).run(progress=False)
    Trainer.resume(data, run, steps=4).run(progress=False)
    assert evaluated == [(2, "step-000002.safetensors"), (2, "step-000002.safetensors"), (4, "step-000004.safetensors")]
    Trainer.resume(data, run, steps=6).run(progress=False)  # step 4's point exists: not evaluated again
    assert [step for step, _ in evaluated] == [2, 2, 4, 6]


def test_table1_switching_reaches_the_losses(corpus, tmp_path):
    trainer = Trainer(load_synthetic(corpus), tmp_path / "r", tiny(12))
    kinds = set()
    for _ in range(12):
        plan = trainer.sampler.plan(trainer.step_no)
        values = trainer.step()
        kinds.add(plan.kind)
        assert ("G/infonce" in values) == plan.use_infonce
        assert values["domain_type"] == plan.domain_type
        if plan.kind != "paired":
            assert "G/infonce" not in values
    assert "paired" in kinds and len(kinds) >= 2


def python_training(*args):
    return [sys.executable, "-m", "training", "train", *map(str, args)]


def test_sigkill_loses_at_most_one_interval_and_resumes(corpus, tmp_path):
    run = tmp_path / "run"
    common = ["--data", corpus, "--preset", "tiny", "--device", "cpu", "--out", run, "--log-every", "1"]
    proc = subprocess.Popen(python_training(*common, "--steps", "60", "--checkpoint-every", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    def saved_step():  # run.json is replaced atomically; older checkpoints are rotated away
        try:
            return json.loads((run / "run.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            return 0

    while saved_step() < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run / "run.json").read_text())
    assert state["step"] >= 4
    r = subprocess.run(python_training(*common, "--steps", str(state["step"] + 2), "--resume"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    steps = [rec["step"] for rec in read_log(run) if "G/total" in rec]
    assert steps == list(range(1, state["step"] + 3))  # every step once: nothing lost, nothing doubled


def test_sigterm_saves_and_exits_cleanly(corpus, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(python_training("--data", corpus, "--preset", "tiny", "--device", "cpu", "--out", run,
                                            "--steps", "500", "--checkpoint-every", "1000", "--log-every", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 240
    while not (run / "log.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "stopped early" in out
    state = json.loads((run / "run.json").read_text())
    assert 0 < state["step"] < 500 and (run / state["latest"]).is_file()


def test_starting_over_an_existing_run_needs_resume(corpus, tmp_path):
    run = tmp_path / "run"
    Trainer(load_synthetic(corpus), run, tiny(1)).run(progress=False)
    r = subprocess.run([sys.executable, "-m", "xfavot_studio.cli", "train", "--data", str(corpus), "--preset", "tiny",
                        "--steps", "2", "--out", str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr


def _ddp_worker(rank, world, port, corpus, out):
    import torch.distributed as dist

    torch.set_num_threads(1)  # two ranks on two cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    trainer = Trainer(load_synthetic(corpus), out, tiny(2, checkpoint_every=2), rank=rank, world_size=world)
    trainer.run(progress=False)
    total = sum(float(p.double().sum()) for p in trainer.nets.parameters())
    ema = sum(float(p.double().sum()) for p in trainer.ema.parameters())
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"params": total, "ema": ema}, f)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp_keeps_ranks_in_sync(corpus, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    torch.multiprocessing.spawn(_ddp_worker, args=(2, free_port(), str(corpus), str(out)), nprocs=2, join=True)
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # gradients were all-reduced: identical weights after different per-rank batches
    steps = [rec["step"] for rec in read_log(out) if "G/total" in rec]
    assert steps == [1, 2]  # only rank 0 writes
    assert (out / "step-000002.safetensors").is_file()


def test_torchrun_entry_point(corpus, tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    run = tmp_path / "run"
    r = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "training", "train",
                        "--data", str(corpus), "--preset", "tiny", "--steps", "2", "--device", "cpu", "--out", str(run),
                        "--log-every", "1"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert [rec["step"] for rec in read_log(run) if "G/total" in rec] == [1, 2]


def stylized_avatars(corpus, out, voices=False):
    """A stand-in for a JoJoGAN-style set: corpus faces posterized into flat colour bands."""
    from PIL import ImageOps

    manifest = synth.load_manifest(corpus)
    gender = {s["speaker"]: s["gender"] for s in manifest["speakers"]}
    for k, f in enumerate(manifest["faces"][:16]):
        img = ImageOps.posterize(Image.open(corpus / f["path"]).convert("RGB"), 2)
        (out / gender[f["speaker"]]).mkdir(parents=True, exist_ok=True)
        img.save(out / gender[f["speaker"]] / f"{k}.png")
    return out



def test_finetune_adapts_only_the_image_side(corpus, tmp_path):
    from core import checkpoint
    from training.finetune import run_finetune

    base_run = tmp_path / "base"
    Trainer(load_synthetic(corpus), base_run, tiny(1)).run(progress=False)
    base = base_run / "step-000001.safetensors"
    avatars = stylized_avatars(corpus, tmp_path / "avatars")
    run = tmp_path / "ft"
    trainer = run_finetune(avatars, None, base, steps=2, out=run, sample_every=100)
    assert trainer.finetune and set(trainer.optims) == {"generator_image", "style_encoder_image", "discriminator_image"}
    trainer.run(progress=False)
    assert (run / "samples" / "faces-from-latents-000001.png").is_file()  # first preview at step 1
    before, _ = checkpoint.load_tensors(base)
    after, header = checkpoint.load_tensors(run / "step-000002.safetensors")

    def changed(prefix):
        return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix + "."))

    assert changed("generator_image") and changed("discriminator_image")
    for frozen in ("mapping", "generator_audio", "style_encoder_audio", "discriminator_audio", "jdc"):
        assert not changed(frozen), frozen
    resumed = run_finetune(avatars, None, base, steps=3, out=run, resume=True)
    assert resumed.finetune and resumed.step_no == 2
    resumed.run(progress=False)
    assert json.loads((run / "run.json").read_text())["step"] == 3


def test_train_only_updates_just_the_named_networks(corpus, tmp_path):
    from core import checkpoint

    Trainer(load_synthetic(corpus), tmp_path / "base", tiny(1)).run(progress=False)
    base = tmp_path / "base" / "step-000001.safetensors"
    only = ("generator_audio", "discriminator_audio")
    trainer = Trainer(load_synthetic(corpus), tmp_path / "ga", tiny(2, train_only=only), init_from=base)
    assert set(trainer.optims) == set(only)
    # the image side and the shared terms reach none of them: their passes are skipped
    assert trainer.d_parts == trainer.g_parts == objective.Parts(image=False, audio=True, shared=False)
    trainer.run(progress=False)
    logged = set().union(*read_log(tmp_path / "ga"))
    assert {"G/aud_adv", "G/f0", "D/aud_adv"} <= logged
    assert not any(k.startswith(("G/img", "D/img")) or k in ("G/infonce", "G/latent_stats") for k in logged), logged
    before, _ = checkpoint.load_tensors(base)
    after, _ = checkpoint.load_tensors(tmp_path / "ga" / "step-000002.safetensors")

    def changed(name, weights=""):  # --init starts both a run's weights and its EMA from the file's (EMA) weights
        return any(not torch.equal(before[k], after[weights + k]) for k in before if k.startswith(name + "."))

    assert changed("generator_audio") and changed("generator_audio", "train.") and changed("discriminator_audio")
    for frozen in ("generator_image", "style_encoder_audio", "style_encoder_image", "mapping"):
        assert not changed(frozen) and not changed(frozen, "train."), frozen
    for frozen in ("discriminator_image", "classifier_audio", "jdc"):
        assert not changed(frozen), frozen
    with pytest.raises(UserError, match="cannot train: jdc"):
        Trainer(load_synthetic(corpus), tmp_path / "bad", tiny(1, train_only=("jdc",)), init_from=base)
    with pytest.raises(UserError, match="discriminator-side network"):
        Trainer(load_synthetic(corpus), tmp_path / "bad", tiny(1, train_only=("generator_audio",)), init_from=base)


def test_parts_follow_the_networks_a_run_trains():
    from training.trainer import DISCRIMINATORS, GENERATOR_SIDE

    assert objective.Parts.of(GENERATOR_SIDE) == objective.Parts()
    assert objective.Parts.of(DISCRIMINATORS) == objective.Parts(image=True, audio=True, shared=False)
    # a fine-tune on a creator's faces: no voices in its batches
    assert objective.Parts.of(("generator_image", "style_encoder_image"), with_voices=False) == \
        objective.Parts(image=True, audio=False, shared=False)
    # E_A alone still needs InfoNCE to stay in the shared style space
    assert objective.Parts.of(("generator_audio", "style_encoder_audio")) == objective.Parts(image=False, audio=True, shared=True)


def test_finetune_cli_rejects_a_one_gender_set(corpus, tmp_path):
    base_run = tmp_path / "base"
    Trainer(load_synthetic(corpus), base_run, tiny(1)).run(progress=False)
    avatars = stylized_avatars(corpus, tmp_path / "avatars")
    shutil.rmtree(avatars / "male")
    r = subprocess.run([sys.executable, "-m", "xfavot_studio.cli", "finetune", "--avatars", str(avatars),
                        "--from", str(base_run / "step-000001.safetensors"), "--steps", "2", "--out", str(tmp_path / "ft"),
                        "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "only female" in r.stderr


def test_init_starts_a_new_run_from_another_runs_weights_and_model_set_changes_the_architecture(corpus, tmp_path,
                                                                                                   caplog):
    from core import checkpoint
    from training.cli import add_train_arguments, run_train

    Trainer(load_synthetic(corpus), tmp_path / "base", tiny(1)).run(progress=False)
    base = tmp_path / "base" / "step-000001.safetensors"
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    common = ["--data", str(corpus), "--preset", "tiny", "--steps", "1", "--checkpoint-every", "1", "--sample-every", "100"]
    run_train(parser.parse_args(common + ["--out", str(tmp_path / "warm"), "--init", str(base),
                                          "--model-set", "img_rgb_norm=false"]))
    assert json.loads((tmp_path / "warm" / "run.json").read_text())["model_config"]["img_rgb_norm"] is False
    run_train(parser.parse_args(common + ["--out", str(tmp_path / "cold"), "--seed", "1"]))
    before, _ = checkpoint.load_tensors(base)

    def distance(run, net="generator_image"):
        after, _ = checkpoint.load_tensors(tmp_path / run / "step-000001.safetensors")
        return sum(float((after[k] - before[k]).abs().sum()) for k in after if k.startswith(net + "."))

    assert distance("warm") < 0.1 * distance("cold")  # one step away from the base, not a fresh start
    run_train(parser.parse_args(common + ["--out", str(tmp_path / "new-gi"), "--init", str(base), "--seed", "1",
                                          "--set", 'init_fresh=["generator_image"]']))
    assert distance("new-gi") > 0.5 * distance("cold")  # G_I starts over ...
    assert distance("new-gi", "style_encoder_image") < 0.1 * distance("cold", "style_encoder_image")  # the rest not
    with pytest.raises(UserError, match="no network named generator_face"):
        run_train(parser.parse_args(common + ["--out", str(tmp_path / "typo"), "--init", str(base),
                                              "--set", 'init_fresh=["generator_face"]']))
    with pytest.raises(UserError, match="no --init"):
        run_train(parser.parse_args(common + ["--out", str(tmp_path / "no-init"), "--set", 'init_fresh=["mapping"]']))
    # two --init files: the later one's networks (a pre-trained G_I + E_I) replace the earlier one's
    from core.config import preset
    from training.data.face_bank import FaceBank
    from training.pretrain_image import pretrain_image

    bank = FaceBank.load_or_render(tmp_path / "bank.safetensors", 64, groups=2, identities=2, poses=2, workers=1)
    pretrain_image(preset("tiny"), tmp_path / "image.safetensors", 3, bank=bank, batch_size=2, progress=False)
    run_train(parser.parse_args(common + ["--out", str(tmp_path / "two"), "--init", str(base), "--init",
                                          str(tmp_path / "image.safetensors")]))
    image, _ = checkpoint.load_tensors(tmp_path / "image.safetensors")
    two, _ = checkpoint.load_tensors(tmp_path / "two" / "step-000001.safetensors")
    for net, start in (("generator_image", image), ("style_encoder_image", image), ("generator_audio", before)):
        moved = sum(float((two[k] - start[k]).abs().sum()) for k in start if k.startswith(net + "."))
        assert moved < 0.1 * distance("cold", net), net
    warm = tmp_path / "warm" / "step-000001.safetensors"
    assert checkpoint.describe(warm).steps == 2 and checkpoint.describe(tmp_path / "cold" / "step-000001.safetensors").steps == 1
    run_train(parser.parse_args(common + ["--out", str(tmp_path / "warm"), "--resume", "--init", str(base)]))
    assert "--init ignored" in caplog.text  # the run keeps the settings it was started with
    with pytest.raises(UserError, match="--init or --aux"):
        run_train(parser.parse_args(common + ["--out", str(tmp_path / "both"), "--init", str(base), "--aux", str(base)]))
    with pytest.raises(UserError, match="--model-set 'img_size': expected KEY=VALUE"):
        run_train(parser.parse_args(common + ["--out", str(tmp_path / "bad"), "--model-set", "img_size"]))
