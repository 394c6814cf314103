"""The `xfavot` command line: outputs, exit codes, stderr. Most commands run in-process (cli.main
with stdout/stderr captured; the same parser and handlers); the few whose point is the process
around them (environment variables, logging set-up, the --debug traceback) run as a user runs
them, in a subprocess."""
import contextlib
import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import soundfile as sf
from PIL import Image

from xfavot_studio import cli


def xfavot(*args, env=None):
    """Run `xfavot ARGS`: in a subprocess when it needs its own environment, else in-process."""
    if env is not None:
        return subprocess.run([sys.executable, "-m", "xfavot_studio.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, **env})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 1
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_init_and_info(tmp_path):
    out = tmp_path / "m.safetensors"
    r = xfavot("init", "--preset", "tiny", "--speakers", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    r = xfavot("info", out)
    assert r.returncode == 0 and "tiny" in r.stdout and "3 speakers" in r.stdout and "Griffin-Lim" in r.stdout
    header = json.loads(xfavot("info", out, "--json").stdout)
    assert header["config"]["speakers"] == ["spk000", "spk001", "spk002"] and header["meta"]["steps"] == 0


@pytest.mark.parametrize("task,src,ref,out", [
    ("face-from-voice", "face.png", "voice.wav", "o.png"),
    ("face-from-face", "face.png", "face64.png", "o.png"),
    ("voice-from-face", "voice.wav", "face.png", "o.wav"),
    ("voice-from-voice", "voice.wav", "voice2.wav", "o.flac"),
])
def test_tasks_write_their_output(tmp_path, tiny_checkpoint, media, task, src, ref, out):
    r = xfavot(task, "--checkpoint", tiny_checkpoint, "--device", "cpu", "--no-align",
               "--source", media / src, "--reference", media / ref, "--out", tmp_path / out)
    assert r.returncode == 0, r.stderr
    if out.endswith(".png"):
        assert Image.open(tmp_path / out).size == (64, 64)
    else:
        data, rate = sf.read(tmp_path / out)
        assert rate == 24000 and data.shape == sf.read(media / src)[0].shape


def test_many_sources_go_to_a_folder_with_progress(tmp_path, tiny_checkpoint, media):
    r = xfavot("face-from-voice", "--checkpoint", tiny_checkpoint, "--no-align", "--batch-size", "2",
               "--source", media / "face.png", media / "face64.png", media / "face.png",
               "--reference", media / "voice.wav", "--out", tmp_path / "outs")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["face.png", "face64.png"]
    assert "3/3" in r.stderr  # tqdm progress bar


def test_sample_writes_a_matching_face_and_voice(tmp_path, tiny_checkpoint, media):
    r = xfavot("sample", "--checkpoint", tiny_checkpoint, "--no-align", "--domain", "spk001", "--seed", "5",
               "--face", media / "face.png", "--out-face", tmp_path / "f.png",
               "--voice", media / "voice.wav", "--out-voice", tmp_path / "v.wav")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f.png").is_file() and (tmp_path / "v.wav").is_file()


def test_user_errors_are_one_line_with_status_2(tmp_path, tiny_checkpoint, media):
    common = ["--checkpoint", tiny_checkpoint, "--no-align"]
    assert_one_line_error(xfavot("face-from-voice", *common, "--source", tmp_path / "missing.png",
                                 "--reference", media / "voice.wav", "--out", tmp_path / "o.png"), "not found")
    (tmp_path / "fake.wav").write_text("hello")
    assert_one_line_error(xfavot("voice-from-voice", *common, "--source", media / "voice.wav",
                                 "--reference", tmp_path / "fake.wav", "--out", tmp_path / "o.wav"), "fake.wav")
    assert_one_line_error(xfavot("face-from-face", *common, "--source", media / "face.png",
                                 "--reference", media / "face.png", "--out", tmp_path / "o.gif"), ".png")
    assert_one_line_error(xfavot("sample", *common, "--domain", "nobody", "--face", media / "face.png",
                                 "--out-face", tmp_path / "x.png"), "unknown domain")
    (tmp_path / "evil.safetensors").write_bytes(b"\x80\x04K\x01.")
    assert_one_line_error(xfavot("info", tmp_path / "evil.safetensors"), "pickle")


def test_missing_default_model_is_a_clear_error(tmp_path, media):
    r = xfavot("face-from-voice", "--source", media / "face.png", "--reference", media / "voice.wav",
               "--out", tmp_path / "o.png", env={"XFAVOT_RESOURCES": str(tmp_path)})
    assert_one_line_error(r, "default model", "--checkpoint")


def test_debug_shows_the_traceback(tmp_path, media):
    r = xfavot("--debug", "face-from-voice", "--checkpoint", tmp_path / "none.safetensors",
               "--source", media / "face.png", "--reference", media / "voice.wav", "--out", tmp_path / "o.png",
               env={})  # the traceback is the interpreter's, so a real process
    assert r.returncode != 0 and "Traceback" in r.stderr and "UserError" in r.stderr


def test_offline_alignment_warns_but_succeeds(tmp_path, tiny_checkpoint, media):
    """Without --no-align and without the landmark weights (an empty cache, the network cut by a
    dead proxy): a one-time warning, not an error."""
    offline = {"TORCH_HOME": str(tmp_path / "torch-cache"), "HTTPS_PROXY": "http://127.0.0.1:9",
               "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    r = xfavot("face-from-face", "--checkpoint", tiny_checkpoint, "--source", media / "face.png",
               "--reference", media / "face.png", "--out", tmp_path / "o.png", env=offline)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.png").is_file()
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "centred square crop" in warnings[0], r.stderr


def test_bench_prints_a_table():
    r = xfavot("bench", "--presets", "tiny", "--batch-sizes", "1", "2", "--repeats", "1", "--seconds", "1")
    assert r.returncode == 0, r.stderr
    assert "voice_from_style" in r.stdout and "RTF" in r.stdout and "params" in r.stdout


@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_data_synth_preview_and_info(tmp_path):
    corpus = tmp_path / "corpus"
    r = xfavot("data", "synth", "--speakers", "6", "--utts", "1", "--faces", "1", "--engines", "espeak",
               "--workers", "2", "--out", corpus)
    assert r.returncode == 0, r.stderr
    assert "6 speakers" in r.stdout and (corpus / "manifest.json").is_file()
    r = xfavot("data", "preview", corpus, "--out", tmp_path / "sheet.png")
    assert r.returncode == 0 and Image.open(tmp_path / "sheet.png").width > 0
    r = xfavot("data", "info", "synthetic", corpus)
    assert r.returncode == 0 and "6 speakers" in r.stdout
    assert_one_line_error(xfavot("data", "synth", "--speakers", "2", "--utts", "1", "--engines", "nope",
                                 "--out", tmp_path / "x"), "--engines", "festival, pico")
    assert_one_line_error(xfavot("data", "synth", "--speakers", "2", "--utts", "1", "--engines", "espeak,mbrola",
                                 "--out", tmp_path / "x"), "not installed", "mbrola")


def test_data_info_reports_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    r = xfavot("data", "info", "avatars", tmp_path / "empty")
    assert r.returncode == 0 and "0 speakers" in r.stdout
    assert_one_line_error(xfavot("data", "info", "celeba-hq", tmp_path / "missing"), "not found")
    assert_one_line_error(xfavot("data", "prepare-av", tmp_path / "empty", "--out", tmp_path / "cache"),
                          "no speaker folders")
