"""Training cost: GFLOP per item of every network and the median training step, per preset.

    python benchmarks/bench_train.py [--presets cpu small] [--devices cpu cuda] [--steps 6] [--levers]

One step = the discriminator update and the generator update of the full objective (both
modalities), batch 8 unless --batch-size. The corpus is a small synthetic one made on the fly
(espeak-ng needed). Warm-up steps (allocations, caches) are not timed; the median is reported.
--levers also times the `cpu` preset with each speed lever undone in turn (bf16 autocast, lazy
R1, the strided-sum pooling cannot be undone here and is in every row), which is how the preset
was sized: see resources/MODEL_CARD.md.
"""
import argparse
import resource
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.config import preset
from core.model import build_networks
from training.config import train_preset
from training.data import synth
from training.data.datasets import load_synthetic
from training.trainer import Trainer


def gflops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


@torch.no_grad()
def network_gflops(name: str, crop_frames: int) -> dict[str, float]:
    """Forward GFLOP for one item (one face, one crop of crop_frames mel frames)."""
    cfg = preset(name)
    n = build_networks(cfg).eval()
    x = torch.randn(1, 3, cfg.img_size, cfg.img_size)
    s, y = torch.randn(1, cfg.style_dim), torch.zeros(1, dtype=torch.long)
    m = torch.randn(1, 1, cfg.n_mels, crop_frames)
    f0 = n["jdc"].get_feature(m)
    return {"G_I": gflops(lambda: n["generator_image"](x, s)),
            "E_I / D_I": gflops(lambda: n["style_encoder_image"](x, y)),
            "G_A": gflops(lambda: n["generator_audio"](m, s, f0)),
            "E_A / D_A / C_A": gflops(lambda: n["style_encoder_audio"](m, y)),
            "JDC": gflops(lambda: n["jdc"](m)),
            "content": gflops(lambda: n["content"].get_feature(m))}


def bench(corpus, name: str, device: str, steps: int, batch: int | None, **overrides) -> dict:
    cfg = train_preset(name, steps=steps + 3, **({"batch_size": batch} if batch else {}), **overrides)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(load_synthetic(corpus), out, cfg, device=device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(3):  # warm-up: first decodes, allocator, autocast caches
            trainer.step()
        times = []
        for _ in range(steps):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        trainer.prefetch.close()
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"preset": name, "device": device, "batch": cfg.batch_size, "crop": cfg.crop_frames,
            "median_s": statistics.median(times), "peak_gib": peak}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["cpu", "small"])
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, help="override the presets' batch sizes")
    p.add_argument("--levers", action="store_true", help="also time the cpu preset with each speed lever undone")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print("\nForward GFLOP per item (FlopCounterMode; a face, or a mel crop of the preset's training length)")
    crops = {name: train_preset(name).crop_frames for name in args.presets}
    table = {name: network_gflops(name, crops[name]) for name in args.presets}
    nets = list(next(iter(table.values())))
    print(f"{'network':<16}" + "".join(f"{f'{n} ({crops[n]} fr)':>18}" for n in args.presets))
    for net in nets:
        print(f"{net:<16}" + "".join(f"{table[n][net]:>18.3f}" for n in args.presets))
    with tempfile.TemporaryDirectory() as corpus:
        synth.synthesize_corpus(corpus, synth.SynthOptions(speakers=24, utts=3, faces=3, seed=0, engines=("espeak",)),
                                progress=False)
        rows = [bench(corpus, pr, dev, args.steps, args.batch_size) for dev in args.devices for pr in args.presets]
        if args.levers:
            for label, overrides in (("cpu, fp32 (no bf16 autocast)", {"amp": False}),
                                     ("cpu, R1 every step", {"r1_every": 1}),
                                     ("cpu, no DiffAugment", {"diffaug": False})):
                row = bench(corpus, "cpu", "cpu", args.steps, args.batch_size, **overrides)
                row["preset"] = label
                rows.append(row)
    print("\nTraining step (D and G updates, both modalities); peak memory: CUDA allocator on GPU, process max RSS on CPU")
    print(f"{'preset':<30} {'device':<6} {'batch':>5} {'crop':>5} {'median s/step':>14} {'ratio':>6} {'peak GiB':>9}")
    base = rows[0]["median_s"]
    for r in rows:
        print(f"{r['preset']:<30} {r['device']:<6} {r['batch']:>5} {r['crop']:>5} {r['median_s']:>14.2f} "
              f"{r['median_s'] / base:>6.2f} {r['peak_gib']:>9.2f}")


if __name__ == "__main__":
    main()
