"""The model library: the embedded default model plus the user's models (a folder of checkpoints).

No Qt: the app calls it from worker jobs, and it is plain to test. Imports are validated by
loading the networks the engine needs before the file is copied in; only safetensors files are
accepted (a pickle is refused by name, never opened).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from core import checkpoint
from core.checkpoint import ModelRecord, describe
from core.engine import DEFAULT_CHECKPOINT, Engine
from core.errors import UserError


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


class ModelLibrary:
    def __init__(self, root: str | Path, builtin: str | Path | None = None):
        self.root = Path(root)
        self.builtin = Path(builtin) if builtin else DEFAULT_CHECKPOINT
        self.root.mkdir(parents=True, exist_ok=True)

    def entries(self, active: str | None = None) -> tuple[list[ModelRecord], list[str]]:
        """(models, problems): unreadable files are listed as problems, not hidden and not fatal.
        An active model outside the library (opened with --checkpoint) is listed too."""
        out, problems = [], []
        if self.builtin.is_file():
            try:
                out.append(describe(self.builtin, builtin=True))
            except UserError as exc:
                problems.append(f"embedded model: {exc}")
        user = []
        for path in sorted(self.root.glob("*.safetensors")):
            try:
                user.append(describe(path))
            except UserError as exc:
                problems.append(f"{path.name}: {exc}")
        out += sorted(user, key=lambda e: e.created, reverse=True)
        if active and Path(active).is_file() and all(Path(e.path).resolve() != Path(active).resolve() for e in out):
            try:
                out.append(describe(Path(active)))
            except UserError as exc:
                problems.append(f"{Path(active).name}: {exc}")
        return out, problems

    def _free_path(self, name: str) -> Path:
        stem, n = _slug(name), 1
        path = self.root / f"{stem}.safetensors"
        while path.exists():
            n += 1
            path = self.root / f"{stem}-{n}.safetensors"
        return path

    def import_file(self, src: str | Path) -> ModelRecord:
        src = Path(src)
        if src.suffix.lower() != ".safetensors":
            raise UserError(f"{src.name}: only .safetensors model files can be imported")
        # loads every network the engine needs: a damaged or foreign file fails here, not later
        checkpoint.load_model(src, require=Engine.INFERENCE_MODULES)
        dst = self._free_path(src.stem)
        checkpoint.atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
        return describe(dst)

    def add_trained(self, trained: str | Path, name: str, base: str | Path | None = None) -> ModelRecord:
        """Put a training run's checkpoint in the library as an inference-only model."""
        dst = self._free_path(name)
        checkpoint.export_inference(trained, dst, vocoder_from=base, meta={"name": name})
        return describe(dst)

    def delete(self, entry: ModelRecord) -> None:
        path = Path(entry.path)
        if entry.builtin or path.resolve() == self.builtin.resolve():
            raise UserError("the embedded default model cannot be deleted")
        if path.parent.resolve() != self.root.resolve():
            raise UserError(f"{path} is not in the model library")
        path.unlink(missing_ok=True)
