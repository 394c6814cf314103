"""Checkpoints: one `.safetensors` file, weights plus a JSON header (config and model card).

The JSON lives in the safetensors metadata under the key "xfavot", so a checkpoint is a single
file that every `xfavot` task accepts. Writes are atomic (temp file, fsync, rename). Pickles are
never loaded: safetensors cannot carry code, and a pickle/torch.save file is refused by name.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .errors import UserError, require_format
from .model import MODULE_NAMES, build_networks

FORMAT = "xfavot-checkpoint"
VERSION = 1
META_KEY = "xfavot"


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync it and rename it over path: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the user's normal mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], header: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={META_KEY: json.dumps(header)}))


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "a torch.save (zip/pickle) file"
    header_length = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and header_length < path.stat().st_size:  # safetensors: u64 LE length, JSON
        return None
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "a Python pickle"
    return None


def _existing_safetensors(path: str | Path) -> Path:
    """The file must exist and must not be a pickle: those are refused by name, never opened."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    kind = _sniff(path)
    if kind:
        raise UserError(f"{path.name} is {kind}; only .safetensors checkpoints are loaded, "
                        "because unpickling a file can run arbitrary code")
    return path


def _read_metadata(path: Path) -> dict:
    """Our JSON header from the safetensors metadata (reads the header only, no tensors)."""
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"checkpoint {path.name} is damaged or truncated ({str(exc).splitlines()[0][:120]})")
    if META_KEY not in metadata:
        raise UserError(f"{path.name} is a safetensors file but not an XFaVoT checkpoint (no '{META_KEY}' header)")
    try:
        return json.loads(metadata[META_KEY])
    except json.JSONDecodeError:
        raise UserError(f"checkpoint {path.name} has a damaged header")


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (tensors, header). UserError for anything that is not an intact XFaVoT safetensors file."""
    path = _existing_safetensors(path)
    header = _read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"checkpoint {path.name} is damaged or truncated ({str(exc).splitlines()[0][:120]})")
    return tensors, header


def model_header(cfg: ModelConfig, meta: dict, modules) -> dict:
    """The header of a model checkpoint: format, version, config, model card, module names."""
    meta = dict(meta)
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "meta": meta, "modules": sorted(modules)}


def require_model(header: dict, path: str | Path) -> dict:
    """The one check that a header is an XFaVoT model checkpoint's (and not too new to read)."""
    name = Path(path).name
    require_format(header, FORMAT, f"{name} is not an XFaVoT model checkpoint")
    if header.get("version", 0) > VERSION:
        raise UserError(f"{name} was written by a newer XFaVoT (format version {header['version']}); update the app")
    return header


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def save_model(path: str | Path, nets: dict[str, torch.nn.Module], cfg: ModelConfig, meta: dict | None = None,
               dtype: torch.dtype | None = None, extra: dict[str, torch.Tensor] | None = None) -> None:
    """Write the given networks (any subset of MODULE_NAMES, plus `extra` tensors such as an
    embedded vocoder under `vocoder.`) with the config and model card `meta`."""
    tensors = {}
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value
    tensors.update(extra or {})
    save_tensors(path, tensors, model_header(cfg, meta or {}, nets))


def load_model(path: str | Path, require: tuple[str, ...] = ()) -> tuple[torch.nn.ModuleDict, ModelConfig, dict, dict]:
    """-> (networks present in the file, config, meta, extra tensors). Always float32 on the CPU."""
    path = Path(path)
    tensors, header = load_tensors(path)
    require_model(header, path)
    try:
        cfg = ModelConfig.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"checkpoint {path.name} has an invalid model config: {exc}")
    present = [m for m in header.get("modules", []) if m in MODULE_NAMES]
    missing = [m for m in require if m not in present]
    if missing:
        raise UserError(f"checkpoint {path.name} lacks {', '.join(missing)}; it cannot be used for this task")
    nets = build_networks(cfg)
    for name in list(nets):
        if name not in present:
            del nets[name]
            continue
        state = {k: v.float() if v.is_floating_point() else v for k, v in split_prefix(tensors, name).items()}
        try:
            nets[name].load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"checkpoint {path.name} does not match its own config (preset "
                            f"{cfg.preset!r}, module {name}): {str(exc).splitlines()[0][:160]}")
    known = tuple(f"{m}." for m in MODULE_NAMES)
    extra = {k: v for k, v in tensors.items() if not k.startswith(known)}
    return nets, cfg, header.get("meta", {}), extra


def read_header(path: str | Path) -> dict:
    """The JSON header alone (cheap: no tensors are read)."""
    return _read_metadata(_existing_safetensors(path))


@dataclass
class ModelRecord:
    """What a model file says about itself: the one reading of a header, for the engine, the model
    library and `xfavot info`."""
    path: str
    name: str
    preset: str
    genders: list[str]
    speakers: list[str]
    steps: int
    vocoder: str          # e.g. "Vocos, 6000 steps" or "Griffin-Lim" (the engine: the one in use)
    data: str
    created: str
    description: str
    mel_frontend: str
    modules: list[str]
    meta: dict = field(default_factory=dict)
    builtin: bool = False  # the embedded default model

    @property
    def domains(self) -> int:
        return len(self.genders) + len(self.speakers)

    def card(self) -> list[tuple[str, str]]:
        """(label, value) rows of the model card that `xfavot info` prints."""
        speakers = self.speakers
        return [("file", self.path), ("name", self.name), ("preset", self.preset), ("description", self.description),
                ("domains", f"{len(self.genders)} genders ({', '.join(self.genders)}) + {len(speakers)} speakers"),
                ("speakers", ", ".join(speakers[:8]) + (" ..." if len(speakers) > 8 else "")),
                ("training steps", str(self.steps)), ("vocoder", self.vocoder), ("mel front end", self.mel_frontend),
                ("modules", ", ".join(self.modules)), ("created", self.created)]


def has_neural_vocoder(meta: dict) -> bool:
    """The model card names a neural vocoder (embedded, or a file beside the checkpoint)."""
    voc = meta.get("vocoder")
    return isinstance(voc, dict) and bool(voc.get("generator_type") or voc.get("path"))


def vocoder_label(meta: dict) -> str:
    """"Vocos, 6000 steps (auto: Griffin-Lim)" for a model with a neural vocoder, else "Griffin-Lim"."""
    if not has_neural_vocoder(meta):
        return "Griffin-Lim"
    voc = meta["vocoder"]
    label = (voc.get("generator_type") or "neural").removesuffix("Generator")
    if voc.get("steps"):
        label += f", {voc['steps']} steps"
    if meta.get("preferred_vocoder") == "griffin-lim":
        label += " (auto: Griffin-Lim)"
    return label


def total_steps(meta: dict) -> int:
    """Training steps behind a model: its own run's plus those of the runs it was started from (--init)."""
    return int(meta.get("steps", 0)) + int(meta.get("steps_before", 0))


def describe(path: str | Path, builtin: bool = False) -> ModelRecord:
    """The record of a model file (header only; UserError for anything that is not one)."""
    path = Path(path)
    header = require_model(read_header(path), path)
    meta, cfg = header.get("meta", {}), header.get("config", {})
    created = meta.get("created") or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return ModelRecord(str(path), meta.get("name") or path.stem, cfg.get("preset", "?"), list(cfg.get("genders", [])),
                       list(cfg.get("speakers", [])), total_steps(meta), vocoder_label(meta),
                       str(meta.get("data", "")), created[:19].replace("T", " "), meta.get("description", ""),
                       cfg.get("mel_frontend", ""), list(header.get("modules", [])), meta, builtin)


# what inference needs: EMA networks, JDC, and the two networks that estimate a reference's gender
SHIPPED_MODULES = ("generator_image", "generator_audio", "style_encoder_image", "style_encoder_audio", "mapping",
                   "jdc", "discriminator_image", "classifier_audio")


# read-outs fitted on a trained model (training/readouts.py), their fits in meta["readouts"]:
# a face's gender from E_I's trunk (face_gender.weight (genders, D), .bias) and a style's voice
# register, log median F0 (f0_register.weight (style_dim,), .bias (1,)); and the training faces'
# styles per gender (face_styles.<gender> (identities, style_dim)) that voice styles snap onto
FACE_GENDER_PREFIX = "face_gender"
F0_REGISTER_PREFIX = "f0_register"
FACE_STYLES_PREFIX = "face_styles"
READOUT_PREFIXES = (FACE_GENDER_PREFIX + ".", F0_REGISTER_PREFIX + ".", FACE_STYLES_PREFIX + ".")

# a vocoder's config and its measured comparison with Griffin-Lim: they travel with its weights
VOCODER_META = ("vocoder", "preferred_vocoder", "vocoder_comparison")


def export_inference(src: str | Path, dst: str | Path, vocoder_from: str | Path | None = None,
                     dtype: torch.dtype | None = None, meta: dict | None = None) -> dict:
    """Write an inference-only copy of a (training) checkpoint: the EMA weights and what the
    Engine needs, without discriminators' partners, optimiser state or training copies.
    The vocoder comes from `src`, or from `vocoder_from` (e.g. the base of a fine-tuned model).
    Returns the new header."""
    tensors, header = load_tensors(src)
    require_model(header, src)
    modules = [m for m in header.get("modules", []) if m in SHIPPED_MODULES]
    keep = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in modules}
    header_meta = dict(header.get("meta", {}))
    vocoder = {k: v for k, v in tensors.items() if k.startswith("vocoder.")}
    if vocoder_from and not vocoder:
        v_tensors, v_header = load_tensors(vocoder_from)
        vocoder = {k: v for k, v in v_tensors.items() if k.startswith("vocoder.")}
        if vocoder and "vocoder" in v_header.get("meta", {}):
            for key in VOCODER_META:
                if key in v_header["meta"]:
                    header_meta[key] = v_header["meta"][key]
    keep.update(vocoder)
    keep.update({k: v for k, v in tensors.items() if k.startswith(READOUT_PREFIXES)})
    if not vocoder:
        for key in VOCODER_META:
            header_meta.pop(key, None)
    if dtype is not None:
        keep = {k: v.to(dtype) if v.is_floating_point() else v for k, v in keep.items()}
    for key in ("optimizers", "train_config"):
        header_meta.pop(key, None)
    header_meta.update(meta or {})
    header_meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    new_header = {**header, "meta": header_meta, "modules": sorted(modules)}
    save_tensors(dst, keep, new_header)
    return new_header
