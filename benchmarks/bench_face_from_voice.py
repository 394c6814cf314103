"""The app's first promise, timed: a face from a recorded voice, on this machine.

    python benchmarks/bench_face_from_voice.py [--checkpoint FILE] [--threads 2] [--repeats 9]

For each bundled sample voice (the gender estimated, as the app's `auto` does) and one bundled
source face: the median over the repeats of the whole `Engine.face_from_voice` call, split into
the voice's style (`style_of_voice`: audio front end, F0, E_A) and the face (`face_from_style`:
snap, G_I, and the gender hold's read-out and redraws). The target is 30 ms on 2 cores.
"""
import argparse
import platform
import statistics
from pathlib import Path

import torch

from core.bench import median_seconds
from core.engine import Engine

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def median_ms(fn, repeats: int) -> float:
    return 1000 * median_seconds(fn, repeats, torch.device("cpu"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="model file (default: the embedded default model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    engine = Engine(align_faces=False)
    engine.load(args.checkpoint, "cpu", vocoder="griffin-lim")
    voices = sorted((SAMPLES / "voices").glob("*.flac"))
    source = sorted((SAMPLES / "faces").glob("*.png"))[0]
    print(f"model {engine.info.name} · torch {torch.__version__} · {args.threads} threads · "
          f"{platform.processor() or platform.machine()} · median of {args.repeats}")
    print(f"{'voice':<24} {'style ms':>9} {'face ms':>8} {'total ms':>9}")
    totals = []
    for voice in voices:
        samples = engine.read_voice(voice)
        style = engine.style_of_voice(samples)
        style_ms = median_ms(lambda: engine.style_of_voice(samples), args.repeats)
        face_ms = median_ms(lambda: engine.face_from_style(source, style), args.repeats)
        total_ms = median_ms(lambda: engine.face_from_voice(source, samples), args.repeats)
        totals.append(total_ms)
        print(f"{voice.stem:<24} {style_ms:>9.1f} {face_ms:>8.1f} {total_ms:>9.1f}")
    print(f"{'median':<24} {'':>9} {'':>8} {statistics.median(totals):>9.1f}  (target 30 ms)")


if __name__ == "__main__":
    main()
