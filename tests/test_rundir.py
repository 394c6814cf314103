"""The run folder (training/rundir.py) and the one reader of a model header (core.checkpoint.describe)."""
import json
import threading

import pytest
import torch
from conftest import expect_user_error

from core import checkpoint
from core.config import ModelConfig
from training.rundir import RunDir


def _save(run: RunDir, step: int, keep_last: int = 2, score=None, pin: bool = False):
    header = {"format": "test", "meta": {"steps": step}}
    return run.save(step, {"w": torch.full((2,), float(step))}, header, {"train_config": {"steps": 99}}, keep_last,
                    score, pin=pin)


def test_rotation_keeps_the_last_k_and_pinned_curve_points(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    _save(run, 10)
    _save(run, 20, pin=True)
    for step in (30, 40, 50):
        _save(run, step)
    names = sorted(p.name for p in run.path.glob("step-*.safetensors"))
    assert names == ["step-000020.safetensors", "step-000040.safetensors", "step-000050.safetensors"]
    state = run.state()
    assert state["step"] == 50 and state["latest"] == "step-000050.safetensors"
    assert state["history"] == ["step-000040.safetensors", "step-000050.safetensors"]
    assert state["pinned"] == ["step-000020.safetensors"]
    assert state["train_config"] == {"steps": 99}
    assert run.latest() == run.path / "step-000050.safetensors"
    tensors, _ = checkpoint.load_tensors(run.latest())
    assert tensors["w"].tolist() == [50.0, 50.0]


def test_best_follows_the_highest_score_only(tmp_path):
    run = RunDir(tmp_path)
    _save(run, 1, score=0.2)
    _save(run, 2, score=0.5)
    _save(run, 3, score=0.1)
    _save(run, 4)  # no validation this time: best unchanged
    assert run.state()["best"] == 0.5
    assert checkpoint.load_tensors(run.best)[0]["w"].tolist() == [2.0, 2.0]


def test_refuses_to_mix_runs_and_explains_a_missing_or_damaged_state(tmp_path):
    run = RunDir(tmp_path)
    expect_user_error(run.state, "no run to resume", "run.json")
    run.refuse_existing()  # an empty folder is fine
    _save(run, 1)
    expect_user_error(run.refuse_existing, "already holds a run", "--resume")
    run.state_file.write_text("{not json")
    expect_user_error(run.state, "damaged", "cannot be resumed")


def test_log_lines_after_the_resumed_step_are_dropped(tmp_path):
    run = RunDir(tmp_path)
    for step in (1, 2, 3, 4):
        run.append_log({"step": step, "loss": step / 10})
    run.truncate_log(2)
    assert [r["step"] for r in run.read_log()] == [1, 2]
    run.append_log({"step": 3, "loss": 0.0})
    assert [r["step"] for r in run.read_log()] == [1, 2, 3]


def test_describe_reads_a_model_header_into_one_record(tmp_path, tiny_checkpoint):
    record = checkpoint.describe(tiny_checkpoint)
    assert record.preset == "tiny" and record.genders == ["female", "male"]
    assert record.domains == len(record.genders) + len(record.speakers)
    assert record.steps == 0 and record.vocoder == "Griffin-Lim"
    assert "generator_image" in record.modules and not record.builtin
    rows = dict(record.card())
    assert rows["preset"] == "tiny" and rows["vocoder"] == "Griffin-Lim"

    # a neural vocoder that lost to Griffin-Lim on the recipe's measurement says so
    meta = {"steps": 1200, "name": "mine", "vocoder": {"generator_type": "VocosGenerator", "steps": 6000},
            "preferred_vocoder": "griffin-lim"}
    path = tmp_path / "m.safetensors"
    checkpoint.save_tensors(path, {"x": torch.zeros(1)}, checkpoint.model_header(ModelConfig(preset="cpu"), meta, ["mapping"]))
    record = checkpoint.describe(path, builtin=True)
    assert (record.name, record.preset, record.steps) == ("mine", "cpu", 1200)
    assert record.vocoder == "Vocos, 6000 steps (auto: Griffin-Lim)" and record.builtin
    assert record.created  # stamped by model_header


@pytest.mark.parametrize("header, words", [
    ({"format": "xfavot-vocoder"}, ["is not an XFaVoT model checkpoint"]),
    ({"format": checkpoint.FORMAT, "version": checkpoint.VERSION + 1}, ["newer XFaVoT", "update the app"]),
])
def test_describe_refuses_what_is_not_a_readable_model(tmp_path, header, words):
    path = tmp_path / "other.safetensors"
    checkpoint.save_tensors(path, {"x": torch.zeros(1)}, header)
    expect_user_error(lambda: checkpoint.describe(path), *words)


def test_describe_refuses_a_pickle_by_its_bytes(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x80\x04" + json.dumps({"a": 1}).encode())  # a pickle renamed to .safetensors
    expect_user_error(lambda: checkpoint.describe(path), "model.safetensors", "pickle", "arbitrary code")


def test_the_curve_point_best_on_most_headlines_is_chosen():
    from training.curve import choose

    points = [
        {"step": 600, "voice->face accuracy / ceiling": 0.5, "self-restyle MAE": 0.12, "face->voice F0 rel. error": 0.5},
        {"step": 1200, "voice->face accuracy / ceiling": 0.4, "self-restyle MAE": 0.10, "face->voice F0 rel. error": 0.3},
        {"step": 1800, "voice->face accuracy / ceiling": 0.4, "self-restyle MAE": 0.11, "face->voice F0 rel. error": 0.3},
    ]
    assert choose(points)["step"] == 1200  # best MAE and (tied) F0 error: two wins, 1800 one, 600 one
    assert choose(points[:1] + points[2:])["step"] == 1800  # two wins (MAE, F0) against one
    assert choose([points[0], {**points[0], "step": 900}])["step"] == 900  # a tie goes to the later step


def test_close_stops_the_tensorboard_writer_and_keeps_its_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    before = set(threading.enumerate())
    run = RunDir(tmp_path)
    run.log_scalars(1, {"G/loss": 0.5})
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()], "the writer runs a thread"
    run.close()
    # a thread left behind would outlive every run of the app's training tab (the queue's feeder
    # thread ends a moment after close, once it sees the queue closed)
    for t in set(threading.enumerate()) - before:
        t.join(timeout=5)
        assert not t.is_alive(), t
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    run.log_scalars(2, {"G/loss": 0.4})  # a resumed run logs again
    run.close()
