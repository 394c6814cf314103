"""Batch export: outputs, manifest, resume, failed items, refusal of a mixed-up folder."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, expect_user_error, speech_like
from PIL import Image

from core.export import ExportPlan, build_items, run_export
from xfavot_studio import cli


@pytest.fixture()
def export_inputs(tmp_path, media):
    faces, voices = tmp_path / "faces", tmp_path / "voices"
    faces.mkdir()
    voices.mkdir()
    shutil.copy(media / "face.png", faces / "a.png")
    shutil.copy(media / "face64.png", faces / "b.png")
    shutil.copy(media / "voice.wav", voices / "v1.wav")
    sf.write(voices / "v2.flac", speech_like(1.0, f0=200, seed=3), SR)
    return faces, voices


def test_items_cover_every_source_reference_pair(export_inputs):
    faces, voices = export_inputs
    plan = ExportPlan(faces=[str(faces / "a.png"), str(faces / "b.png")], voices=[str(voices / "v1.wav")],
                      ref_voices=[str(voices / "v1.wav")], latents=3)
    items = build_items(plan)
    assert len(items) == (2 + 1) * (1 + 3)
    assert len({i.output for i in items}) == len(items)
    latent = [i.reference for i in items if i.reference.kind == "latent"]
    assert {(r.domain, r.seed) for r in latent} == {("female", 0), ("male", 1), ("female", 2)}
    expect_user_error(lambda: build_items(ExportPlan(faces=plan.faces)), "reference")
    expect_user_error(lambda: build_items(ExportPlan(latents=2)), "source")


def test_export_writes_files_and_manifest_then_resumes(engine, export_inputs, tmp_path):
    faces, voices = export_inputs
    out = tmp_path / "out"
    plan = ExportPlan(faces=[str(faces / "a.png"), str(faces / "b.png")], voices=[str(voices / "v2.flac")],
                      ref_voices=[str(voices / "v1.wav")], latents=2)
    calls = []
    summary = run_export(engine, plan, out, should_cancel=lambda: len(calls) >= 4,
                         on_progress=lambda n, total, item: calls.append(item.id))
    assert summary.cancelled and summary.done == 4 and summary.total == 9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["preset"] == "tiny" and manifest["settings"]["latents"] == 2
    assert sum(i["status"] == "done" for i in manifest["items"]) == 4

    calls.clear()
    summary = run_export(engine, plan, out, on_progress=lambda n, total, item: calls.append(item.id))
    assert not summary.cancelled and summary.skipped == 4 and summary.done == 9 and not summary.failed
    assert len(calls) == 5  # only the unfinished items ran
    img = Image.open(out / "faces" / "a__latent-male-s1.png")
    assert img.size == (64, 64)
    wav, rate = sf.read(out / "voices" / "v2__voice-v1.wav")
    assert rate == SR and abs(wav.size - SR) <= 300
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 9 and {r["status"] for r in rows} == {"done"}
    assert {r["seed"] for r in rows if r["reference_kind"] == "latent"} == {"0", "1"}

    # the same folder with another plan is refused, not mixed
    other = ExportPlan(faces=plan.faces, latents=1)
    expect_user_error(lambda: run_export(engine, other, out), "another output folder")


def test_bad_inputs_fail_their_items_with_reasons(engine, export_inputs, tmp_path):
    faces, voices = export_inputs
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    plan = ExportPlan(faces=[str(faces / "a.png"), str(broken)], ref_voices=[str(voices / "v1.wav"), str(silent)])
    summary = run_export(engine, plan, tmp_path / "out")
    assert summary.done == 1 and len(summary.failed) == 3
    reasons = dict(summary.failed)
    assert "silent" in reasons["face:a__voice-silent"]
    assert "broken.png" in reasons["face:broken__voice-v1"]


def test_cli_export(tiny_checkpoint, export_inputs, tmp_path, capsys):
    faces, voices = export_inputs
    out = tmp_path / "cli"
    rc = cli.main(["export", "--faces", str(faces), "--voices", str(voices / "v1.wav"), "--latents", "2",
                   "--format", "flac", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--no-align"])
    assert rc == 0
    assert "6 of 6 items" in capsys.readouterr().out
    assert (out / "voices" / "v1__latent-female-s0.flac").is_file()
    assert len(list((out / "faces").glob("*.png"))) == 4
    rc = cli.main(["export", "--faces", str(tmp_path / "nowhere"), "--latents", "1", "--out", str(out),
                   "--checkpoint", str(tiny_checkpoint)])
    assert rc == 2
    assert "folder not found" in capsys.readouterr().err


def test_export_killed_mid_run_resumes_without_losing_or_repeating_items(tiny_checkpoint, export_inputs, tmp_path,
                                                                        capsys):
    faces, voices = export_inputs
    out = tmp_path / "killed"
    # 2 faces and 2 voices against 100 latent styles: 400 items, several seconds even on a fast machine
    args = ["export", "--faces", str(faces), "--voices", str(voices), "--latents", "100", "--out", str(out),
            "--checkpoint", str(tiny_checkpoint), "--no-align", "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "xfavot_studio.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:  # wait for a periodic manifest with work in it
            if manifest.is_file() and sum(i["status"] == "done" for i in json.loads(manifest.read_text())["items"]) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the export finished before it could be killed; give it more items"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    items = json.loads(manifest.read_text())["items"]
    done = [i for i in items if i["status"] == "done"]
    assert 3 <= len(done) < len(items) == 400
    for i in done:  # what the manifest calls done is on disk, whole
        if i["output_kind"] == "face":
            assert Image.open(out / i["output"]).size == (64, 64)
        else:
            assert sf.info(out / i["output"]).frames > 0
    os.unlink(out / done[0]["output"])  # a finished output deleted by the user is redone

    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert f"{len(done) - 1} were already done" in text and "400 of 400 items" in text
    final = json.loads(manifest.read_text())["items"]
    assert [i["id"] for i in final] == [i["id"] for i in items] and {i["status"] for i in final} == {"done"}
    outputs = sorted(str(p.relative_to(out)) for p in out.glob("*/*") if not p.name.startswith("."))
    assert outputs == sorted(i["output"] for i in final)  # each once, none missing


def test_an_unreadable_manifest_is_explained_not_overwritten(engine, export_inputs, tmp_path):
    faces, voices = export_inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{ half a manifest")
    plan = ExportPlan(faces=[str(faces / "a.png")], latents=1)
    expect_user_error(lambda: run_export(engine, plan, out), "manifest.json", "cannot be read", "empty output folder")
    assert (out / "manifest.json").read_text() == "{ half a manifest"
