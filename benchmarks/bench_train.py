"""Training throughput: steps/s and peak memory per preset and device, on a generated corpus.

    python benchmarks/bench_train.py [--presets small paper] [--devices cpu cuda] [--steps 5]

One step = the discriminator update and the generator update of the full objective (both
modalities). The corpus is a small synthetic one made on the fly (espeak-ng needed). The first
step (allocations, caches) is not timed; the median step time is reported.
"""
import argparse
import resource
import statistics
import tempfile
import time

import torch

from training.config import train_preset
from training.data import synth
from training.data.datasets import load_synthetic
from training.trainer import Trainer


def bench(corpus, preset: str, device: str, steps: int, batch: int | None) -> dict:
    cfg = train_preset(preset, steps=steps + 1, **({"batch_size": batch} if batch else {}))
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(load_synthetic(corpus), out, cfg, device=device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.step()  # warm-up
        times = []
        for _ in range(steps):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    med = statistics.median(times)
    return {"preset": preset, "device": device, "batch": cfg.batch_size, "median_s": med, "steps_per_s": 1 / med,
            "peak_gib": peak}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--presets", nargs="+", default=["small", "paper"])
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, help="override the presets' batch sizes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as corpus:
        synth.synthesize_corpus(corpus, synth.SynthOptions(speakers=24, utts=3, faces=3, seed=0, engines=("espeak",)),
                                progress=False)
        rows = [bench(corpus, pr, dev, args.steps, args.batch_size) for dev in args.devices for pr in args.presets]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; peak memory: CUDA allocator on GPU, "
          "process max RSS on CPU")
    print(f"{'preset':<7} {'device':<6} {'batch':>5} {'median s/step':>14} {'steps/s':>8} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['preset']:<7} {r['device']:<6} {r['batch']:>5} {r['median_s']:>14.2f} {r['steps_per_s']:>8.3f} "
              f"{r['peak_gib']:>9.2f}")


if __name__ == "__main__":
    main()
