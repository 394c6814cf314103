"""A training run's folder: the one place that knows its layout and its state file.

    RUN_DIR/
      run.json                  state pointer: step, latest checkpoint, the last K, best score, configs
      step-NNNNNN.safetensors   complete checkpoints (EMA weights for inference + training state), last K kept
      best.safetensors          copy of the checkpoint with the best held-out retrieval
      log.jsonl                 one JSON line per logged step (losses, validation, evaluation)
      tb/                       TensorBoard scalars (when tensorboardX is installed)
      samples/                  face grids and WAVs written during training
      curve/                    `xfavot eval` reports of checkpoints (learning curve)

The trainer, `xfavot train`, `xfavot finetune` and the app's training tab all go through RunDir.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from core import checkpoint
from core.errors import UserError

STATE_FILE = "run.json"
LOG_FILE = "log.jsonl"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tb = None

    # -- layout -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def best(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def curve(self) -> Path:
        return self.path / "curve"

    def checkpoint_path(self, step: int) -> Path:
        return self.path / f"step-{step:06d}.safetensors"

    # -- state ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.state_file.is_file()

    def refuse_existing(self) -> None:
        """A new run must not silently mix with an old one."""
        if self.exists():
            raise UserError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")

    def state(self) -> dict:
        if not self.exists():
            raise UserError(f"{self.path} has no run to resume ({STATE_FILE} missing)")
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.state_file} is damaged ({exc}); the run cannot be resumed")

    def latest(self) -> Path:
        """The newest complete checkpoint of the run."""
        return self.path / self.state()["latest"]

    def save(self, step: int, tensors: dict, header: dict, state: dict, keep_last: int,
             score: float | None = None, pin: bool = False) -> Path:
        """Write step-NNNNNN.safetensors, rotate old ones, keep best.safetensors and run.json
        current. Every file is written atomically, run.json last, so a crash leaves a usable run.
        A pinned checkpoint (a learning-curve point, which a recipe may pick) is never rotated out."""
        path = self.checkpoint_path(step)
        checkpoint.save_tensors(path, tensors, header)
        previous = self.state() if self.exists() else {}
        pinned = [h for h in previous.get("pinned", []) if h != path.name] + ([path.name] if pin else [])
        history = [h for h in previous.get("history", []) if h != path.name] + [path.name]
        for old in history[:-keep_last]:
            if old not in pinned:
                (self.path / old).unlink(missing_ok=True)
        history = history[-keep_last:]
        best = previous.get("best")
        if score is not None and (best is None or score >= best):
            best = score
            checkpoint.atomic_write(self.best, lambda tmp: shutil.copyfile(path, tmp))
        state = {**state, "step": step, "latest": path.name, "history": history, "pinned": pinned, "best": best}
        checkpoint.atomic_write(self.state_file, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1)))
        return path

    # -- log ------------------------------------------------------------------------------------
    def append_log(self, record: dict) -> None:
        with open(self.log_file, "a") as f:
            f.write(json.dumps(record) + "\n")

    def log_scalars(self, step: int, values: dict) -> None:
        """TensorBoard scalars under tb/, when tensorboardX is installed (it is optional)."""
        try:
            if self._tb is None:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.path / "tb"))
        except ImportError:
            return
        for k, v in values.items():
            if isinstance(v, float) and math.isfinite(v):
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        """Flush and stop the TensorBoard writer: its thread would otherwise outlive the run (and a
        process forked while it holds a lock can hang). log_scalars opens a new one if needed."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def read_log(self) -> list[dict]:
        if not self.log_file.is_file():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]

    def truncate_log(self, step: int) -> None:
        """Drop log lines of steps after `step` (written before a crash): they are redone."""
        if self.log_file.is_file():
            keep = [json.dumps(r) for r in self.read_log() if r["step"] <= step]
            checkpoint.atomic_write(self.log_file, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in keep)))
