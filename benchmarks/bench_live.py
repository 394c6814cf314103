"""Live voice conversion on this machine: compute time per block and the latency it adds up to.

    python benchmarks/bench_live.py [--checkpoint FILE] [--vocoder auto|griffin-lim] [--threads 1 2]
                                    [--transpose off auto]

Streams a bundled sample voice (converted to another sample's voice) through core.streaming block
by block, as the live path does, for each block size and thread count. Compute per block is the
median and p95 over the blocks after the first second; a block must be computed in less than its
own length (real-time factor < 1; `auto` transposition adds a pitch shift of the newest audio
per block once it has settled, `off` none), and the latency a user hears is block + held-back join audio +
compute + the sound card's buffers (not measured here: see the Live tab or `xfavot live`).
"""
import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from core import audio
from core.engine import Engine
from core.streaming import StreamingConverter

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples" / "voices"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="model file (default: the embedded default model)")
    p.add_argument("--vocoder", default="auto")
    p.add_argument("--blocks", type=float, nargs="+", default=[50, 100, 200])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--transpose", nargs="+", default=["off", "auto"], choices=["off", "auto"])
    args = p.parse_args()
    engine = Engine(align_faces=False)
    engine.load(args.checkpoint, "cpu", vocoder=args.vocoder)
    voices = sorted(SAMPLES.glob("*.flac"))
    source = np.concatenate([engine.read_voice(v) for v in voices[:3]])[: 12 * audio.SAMPLE_RATE]
    style = engine.style_of_voice(voices[3])
    print(f"model {engine.info.name} · vocoder {engine.info.vocoder} · torch {torch.__version__} · "
          f"{source.size / audio.SAMPLE_RATE:.1f} s of speech")
    print(f"{'block ms':>8} {'threads':>7} {'transpose':>9} {'compute p50 ms':>14} {'p95 ms':>7} {'RTF':>6} "
          f"{'algorithmic ms':>14} {'latency p50 ms':>14}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for block_ms in args.blocks:
            for transpose in args.transpose:
                stream = StreamingConverter(engine, style, block_ms=block_ms, transpose=None if transpose == "auto" else 0)
                for chunk in np.array_split(source, source.size // stream.block):
                    stream.process(chunk)
                skip = int(audio.SAMPLE_RATE // stream.block)  # the first second: warm-up
                compute = stream.compute_ms[skip:]
                p50, p95 = statistics.median(compute), float(np.percentile(compute, 95))
                t = stream.timings()
                label = f"{transpose} {stream.semitones:+d}" if transpose == "auto" else transpose
                print(f"{t.block_ms:>8.0f} {threads:>7} {label:>9} {p50:>14.1f} {p95:>7.1f} {p50 / t.block_ms:>6.2f} "
                      f"{t.algorithmic_ms:>14.0f} {t.algorithmic_ms + p50:>14.0f}")


if __name__ == "__main__":
    main()
