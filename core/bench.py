"""Inference benchmark: median latency per task at several batch sizes, parameter counts, and the
voice real-time factor (vocoder included), for trained checkpoints (the embedded default, with its
neural vocoder) and untrained models of each preset (Griffin-Lim).

Run as `python benchmarks/bench_inference.py` or `xfavot bench`. Preset weights are random: latency
does not depend on training, so every preset can be measured without a trained checkpoint. On the
CPU, "peak memory" is the process's maximum RSS so far (it never goes down between rows).
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
from .engine import DEFAULT_CHECKPOINT, Engine


def median_seconds(fn, repeats: int, device: torch.device) -> float:
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


def _peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocator peak, or the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _bench_engine(engine: Engine, label: str, batch_sizes: list[int], repeats: int, seconds: float,
                  load_s: float) -> list[dict]:
    cfg, dev = engine.cfg, engine.device
    params = {name: model.count_parameters(engine.nets[name]) for name in model.EMA_MODULES}
    rng = np.random.default_rng(0)
    face = Image.fromarray(rng.integers(0, 255, (cfg.img_size, cfg.img_size, 3), dtype=np.uint8))
    t = np.arange(int(seconds * 24000)) / 24000
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    style = engine.sample_style("female", 0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
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
            med = median_seconds(fn, repeats, dev)
            row = dict(preset=label, device=str(dev), task=task, batch=bs, median_ms=med * 1000,
                       per_item_ms=med * 1000 / bs, load_s=load_s, params_m=sum(params.values()) / 1e6)
            if task == "voice_from_style":
                row["rtf"] = med / (seconds * bs)
            rows.append(row)
    rows.append(dict(preset=label, device=str(dev), task="(parameters)", batch=0, median_ms=0.0, per_item_ms=0.0,
                     load_s=load_s, params_m=sum(params.values()) / 1e6, peak_mb=_peak_memory_mb(dev),
                     vocoder=engine.vocoder.description,
                     detail=", ".join(f"{k} {v / 1e6:.2f}M" for k, v in params.items())))
    return rows


def bench_checkpoint(path: str | Path, device: str, batch_sizes: list[int], repeats: int, seconds: float) -> list[dict]:
    """A real (e.g. the embedded, trained) model with its own neural vocoder when it has one (the
    untrained preset rows use Griffin-Lim, so the two voice RTFs sit side by side)."""
    engine = Engine(batch_size=max(batch_sizes), align_faces=False)
    start = time.perf_counter()
    has_neural = checkpoint.has_neural_vocoder(checkpoint.describe(path).meta)
    engine.load(path, device, vocoder="neural" if has_neural else "griffin-lim")
    load_s = time.perf_counter() - start
    label = "default" if Path(path).resolve() == DEFAULT_CHECKPOINT.resolve() else Path(path).stem[:7]
    return _bench_engine(engine, label, batch_sizes, repeats, seconds, load_s)


def bench_preset(preset: str, device: str, batch_sizes: list[int], repeats: int, seconds: float) -> list[dict]:
    """An untrained model of a preset (latency does not depend on training), Griffin-Lim vocoder."""
    cfg = config.preset(preset)
    torch.manual_seed(0)
    nets = model.build_networks(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{preset}.safetensors"
        checkpoint.save_model(path, {k: nets[k] for k in checkpoint.SHIPPED_MODULES}, cfg)
        del nets
        return bench_checkpoint(path, device, batch_sizes, repeats, seconds)


@torch.inference_mode()
def bench_reference(device: str, batch_sizes: list[int], repeats: int, seconds: float) -> list[dict]:
    """Generator forward passes of the paper's tables (ours) next to the official code's
    architectures at the same channel counts (config.REFERENCE_ARCHITECTURES), same inputs."""
    from .engine import resolve_device

    dev = resolve_device(device)
    paper = config.preset("paper")
    frames = int(seconds * 24000) // 300 // 4 * 4
    rows = []
    for name, overrides in config.REFERENCE_ARCHITECTURES.items():
        image = "img_down_blocks" in overrides
        torch.manual_seed(0)
        ours = (model.ImageGenerator if image else model.AudioGenerator)(paper).to(dev).eval()
        ref = (model.ImageGenerator if image else model.AudioGenerator)(config.preset("paper", **overrides)).to(dev).eval()
        for bs in batch_sizes:
            s = torch.randn(bs, paper.style_dim, device=dev)
            if image:
                x = torch.randn(bs, 3, paper.img_size, paper.img_size, device=dev)
                args = (x, s)
            else:
                x = torch.randn(bs, 1, paper.n_mels, frames, device=dev)
                f0 = torch.randn(bs, paper.f0_channels, paper.n_mels // 8, frames, device=dev)
                args = (x, s, f0)
            t_ours = median_seconds(lambda: ours(*args), repeats, dev)
            t_ref = median_seconds(lambda: ref(*args), repeats, dev)
            rows.append(dict(reference=name, device=str(dev), batch=bs, ours_ms=t_ours * 1000, ref_ms=t_ref * 1000,
                             ratio=t_ours / t_ref, ours_params_m=model.count_parameters(ours) / 1e6,
                             ref_params_m=model.count_parameters(ref) / 1e6))
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")
    print(f"{'model':<7} {'device':<7} {'task':<17} {'batch':>5} {'median ms':>11} {'ms/item':>9} {'RTF':>7}")
    for r in rows:
        if r["task"] == "(parameters)":
            print(f"{r['preset']:<7} {r['device']:<7} params (G+E+M) {r['params_m']:.2f} M: {r['detail']}; "
                  f"load {r['load_s']:.2f} s; peak memory {r['peak_mb']:.0f} MiB; vocoder {r['vocoder']}")
            continue
        rtf = f"{r['rtf']:.3f}" if "rtf" in r else ""
        print(f"{r['preset']:<7} {r['device']:<7} {r['task']:<17} {r['batch']:>5} {r['median_ms']:>11.1f} "
              f"{r['per_item_ms']:>9.1f} {rtf:>7}")


def print_reference_table(rows: list[dict]) -> None:
    print("generator forward, paper sizes: ours (Tables 6-7) vs the official code's architecture")
    print(f"{'reference':<42} {'device':<7} {'batch':>5} {'ours ms':>9} {'ref ms':>9} {'ours/ref':>9} "
          f"{'params ours/ref (M)':>20}")
    for r in rows:
        print(f"{r['reference']:<42} {r['device']:<7} {r['batch']:>5} {r['ours_ms']:>9.1f} {r['ref_ms']:>9.1f} "
              f"{r['ratio']:>9.2f} {r['ours_params_m']:>9.2f} / {r['ref_params_m']:.2f}")


def main(presets=("small",), devices=("cpu",), batch_sizes=(1, 16), repeats=3, seconds=3.0,
         checkpoints=(), reference=False) -> list[dict]:
    rows, ref_rows = [], []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine, skipped")
            continue
        for path in checkpoints:
            rows += bench_checkpoint(path, device, list(batch_sizes), repeats, seconds)
        for preset in presets:
            rows += bench_preset(preset, device, list(batch_sizes), repeats, seconds)
        if reference:
            ref_rows += bench_reference(device, list(batch_sizes), repeats, seconds)
    print_table(rows)
    if ref_rows:
        print()
        print_reference_table(ref_rows)
    return rows + ref_rows
