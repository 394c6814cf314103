"""Vocoder choice on the CPU: real-time factor of the two generator families we can train.

    python benchmarks/bench_vocoder.py [--seconds 3] [--repeats 3]

Weights are random (speed does not depend on training). Median of --repeats runs after a warm-up.
"""
import argparse
import statistics
import time

import torch

from core import model
from core.vocoder import Vocoder, build_generator
from training.vocoder import VOCODERS


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    frames = int(args.seconds * 80)
    mel = torch.randn(80, frames)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seconds:.1f} s of audio per call")
    print(f"{'vocoder':<10} {'params M':>9} {'median s':>9} {'RTF':>7}")
    for name, spec in VOCODERS.items():
        torch.manual_seed(0)
        voc = Vocoder(build_generator(spec["generator_type"], spec["generator_params"]), "xfavot24k", name)
        voc(mel)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            voc(mel)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        params = model.count_parameters(voc.generator) / 1e6
        print(f"{name:<10} {params:>9.2f} {med:>9.2f} {med / args.seconds:>7.3f}")


if __name__ == "__main__":
    main()
