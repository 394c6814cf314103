"""Print the inference benchmark tables:

    python benchmarks/bench_inference.py [--checkpoints CKPT ...] [--presets cpu small paper] [--no-reference]

Rows per model (the embedded default when installed, plus untrained presets): latency per task at
batch 1 and 16, voice real-time factor with the model's vocoder, load time, peak memory. Then the
generators of the paper's tables next to the official StarGANv2 / StarGANv2-VC architectures at
the same channel counts (ratios). Training speed: benchmarks/bench_train.py."""
import argparse

import torch

from core import bench
from core.engine import DEFAULT_CHECKPOINT

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--checkpoints", nargs="*", default=[str(DEFAULT_CHECKPOINT)] if DEFAULT_CHECKPOINT.is_file() else [])
parser.add_argument("--presets", nargs="*", default=["cpu", "small", "paper"])
parser.add_argument("--no-reference", action="store_true", help="skip the reference-architecture table")
parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--seconds", type=float, default=3.0)
args = parser.parse_args()
bench.main(args.presets, args.devices, args.batch_sizes, args.repeats, args.seconds, args.checkpoints,
           reference=not args.no_reference)
