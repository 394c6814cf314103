"""Print the inference benchmark table: python benchmarks/bench_inference.py [--presets small paper]."""
import argparse

import torch

from core import bench

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--presets", nargs="+", default=["small", "paper"])
parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--seconds", type=float, default=3.0)
args = parser.parse_args()
bench.main(args.presets, args.devices, args.batch_sizes, args.repeats, args.seconds)
