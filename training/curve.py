"""The learning curve: `xfavot eval` on a run's checkpoints while it trains, plotted against the
hours of training (on the machine that trained it; evaluation time not counted).

    xfavot train ... --eval-every 1000 --eval-corpus CORPUS [--eval-split test] [--eval-vocoder VOC]

writes RUN_DIR/curve/step-NNNNNN/ (the full report), RUN_DIR/curve/curve.jsonl (one line of
headline numbers per point) and RUN_DIR/curve.png. `python -m training.curve choose RUN_DIR` prints
the checkpoint to ship (see `choose`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# headline numbers: (label, path into the report, target, higher is better)
HEADLINES = {
    "voice->face accuracy / ceiling": (("voice_to_face", "ratio_to_ceiling"), 0.80, True),
    "retrieval top-1 (8 speakers)": (("retrieval", "8_speakers", "top1"), 0.60, True),
    "self-restyle MAE": (("face_to_face_self", "mean_abs_error"), 0.08, False),
    "face->voice F0 rel. error": (("face_to_voice", "f0_rel_error"), 0.10, False),
    "VC sim(ref) - sim(src)": (("voice_to_voice", "similarity_margin"), 0.05, True),
    "WER converted / source": (("voice_to_voice", "wer_ratio"), 1.3, False),
}


def headlines(report: dict) -> dict[str, float]:
    out = {}
    for label, (path, _, _) in HEADLINES.items():
        value = report
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            out[label] = float(value)
    return out


def record(run_dir, checkpoint_path: Path, step: int, train_hours: float, corpus: str, split: str,
           vocoder_file: str | None, device: str = "cpu") -> dict:
    """Evaluate one checkpoint, append its headline numbers to curve.jsonl and redraw curve.png."""
    from .evaluate import evaluate

    report = evaluate(checkpoint_path, corpus, run_dir.curve / f"step-{step:06d}", device=device, split=split,
                      vocoder_file=vocoder_file or None)
    point = {"step": step, "train_hours": round(train_hours, 4), "split": split, **headlines(report)}
    run_dir.curve.mkdir(parents=True, exist_ok=True)
    points = [p for p in read_points(run_dir.curve / "curve.jsonl") if p["step"] < step] + [point]
    (run_dir.curve / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    plot(points, run_dir.path / "curve.png")
    return point


def read_points(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot(points: list[dict], out: Path, title: str = "") -> Path:
    """One panel per headline number against training hours, its target as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
    hours = [p["train_hours"] for p in points]
    for ax, (label, (_, target, higher)) in zip(axes.flat, HEADLINES.items()):
        values = [p.get(label) for p in points]
        xs = [h for h, v in zip(hours, values) if v is not None]
        ax.plot(xs, [v for v in values if v is not None], "o-", color="#4e79a7")
        ax.axhline(target, ls="--", color="#e15759", lw=1)
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_xlabel("training hours (2-core CPU)", fontsize=8)
        ax.grid(alpha=0.3)
    split = points[-1].get("split", "test") if points else "test"
    fig.suptitle(title or f"Learning curve on the held-out {split} speakers (dashed: target)", fontsize=11)
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def choose(points: list[dict]) -> dict:
    """The point that is best (among the points) on the most headline numbers; ties go to the later
    step. Decided on the validation speakers; the report of the chosen one is then run on the test
    speakers."""
    wins = {p["step"]: 0 for p in points}
    for label, (_, _, higher) in HEADLINES.items():
        scored = [p for p in points if p.get(label) is not None]
        if scored:
            best = (max if higher else min)(p[label] for p in scored)
            for p in scored:
                wins[p["step"]] += p[label] == best
    return max(points, key=lambda p: (wins[p["step"]], p["step"]))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "choose":
        sys.exit("usage: python -m training.curve choose RUN_DIR")
    run = Path(sys.argv[2])
    kept = [p for p in read_points(run / "curve" / "curve.jsonl") if (run / f"step-{p['step']:06d}.safetensors").is_file()]
    if not kept:
        sys.exit(f"{run} has no learning-curve checkpoints (train with --eval-every)")
    print(run / f"step-{choose(kept)['step']:06d}.safetensors")
