"""Inference benchmark: median latency per task at several batch sizes, parameter counts, and the
voice real-time factor (vocoder included), for untrained models of each preset.

Run as `python benchmarks/bench_inference.py` or `xfavot bench`. Weights are random: latency does
not depend on training, so every preset can be measured without a trained checkpoint.
"""
from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import checkpoint, config, model
from .engine import Engine


def _median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_preset(preset: str, device: str, batch_sizes: list[int], repeats: int, seconds: float) -> list[dict]:
    cfg = config.preset(preset)
    torch.manual_seed(0)
    nets = model.build_networks(cfg)
    params = {name: model.count_parameters(nets[name]) for name in model.EMA_MODULES}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{preset}.safetensors"
        checkpoint.save_model(path, {k: nets[k] for k in (*Engine.INFERENCE_MODULES, "discriminator_image",
                                                          "classifier_audio")}, cfg)
        del nets
        engine = Engine(batch_size=max(batch_sizes), align_faces=False)
        start = time.perf_counter()
        engine.load(path, device)
        load_s = time.perf_counter() - start
    dev = engine.device
    rng = np.random.default_rng(0)
    face = Image.fromarray(rng.integers(0, 255, (cfg.img_size, cfg.img_size, 3), dtype=np.uint8))
    t = np.arange(int(seconds * 24000)) / 24000
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    style = engine.sample_style("female", 0)
    rows = []
    for bs in batch_sizes:
        faces, voices = [face] * bs, [voice] * bs
        tasks = {
            "style_of_face": lambda: [engine.style_of_face(face, "female") for _ in range(bs)],
            "style_of_voice": lambda: [engine.style_of_voice(voice, "female") for _ in range(bs)],
            "sample_style": lambda: [engine.sample_style("male", i) for i in range(bs)],
            "face_from_style": lambda: engine.face_from_style(faces, style),
            "voice_from_style": lambda: engine.voice_from_style(voices, style),
        }
        for task, fn in tasks.items():
            med = _median_seconds(fn, repeats, dev)
            row = dict(preset=preset, device=str(dev), task=task, batch=bs, median_ms=med * 1000,
                       per_item_ms=med * 1000 / bs, load_s=load_s, params_m=sum(params.values()) / 1e6)
            if task == "voice_from_style":
                row["rtf"] = med / (seconds * bs)
            rows.append(row)
    rows.append(dict(preset=preset, device=str(dev), task="(parameters)", batch=0, median_ms=0.0, per_item_ms=0.0,
                     load_s=load_s, params_m=sum(params.values()) / 1e6,
                     detail=", ".join(f"{k} {v / 1e6:.2f}M" for k, v in params.items())))
    return rows


def print_table(rows: list[dict], vocoder: str) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; vocoder: {vocoder}")
    print(f"{'preset':<7} {'device':<7} {'task':<17} {'batch':>5} {'median ms':>11} {'ms/item':>9} {'RTF':>7}")
    for r in rows:
        if r["task"] == "(parameters)":
            print(f"{r['preset']:<7} {r['device']:<7} params (G+E+M) {r['params_m']:.2f} M: {r['detail']}; "
                  f"model load {r['load_s']:.2f} s")
            continue
        rtf = f"{r['rtf']:.3f}" if "rtf" in r else ""
        print(f"{r['preset']:<7} {r['device']:<7} {r['task']:<17} {r['batch']:>5} {r['median_ms']:>11.1f} "
              f"{r['per_item_ms']:>9.1f} {rtf:>7}")


def main(presets=("small",), devices=("cpu",), batch_sizes=(1, 16), repeats=3, seconds=3.0) -> list[dict]:
    rows = []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine, skipped")
            continue
        for preset in presets:
            rows += bench_preset(preset, device, list(batch_sizes), repeats, seconds)
    print_table(rows, "Griffin-Lim (untrained models carry no neural vocoder)")
    return rows
