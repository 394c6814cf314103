"""Batch export: every source face / voice against every reference, with a resumable manifest.

    plan = ExportPlan(faces=[...], voices=[...], ref_voices=[...], ref_faces=[...], latents=8)
    summary = run_export(engine, plan, "out/", on_progress=..., should_cancel=...)

References are voices, faces, or N latent samples (seeds seed, seed+1, ...; domains cycle through
`latent_domains`). A face source x a reference writes faces/<source>__<reference>.png; a voice
source writes voices/<source>__<reference>.wav. With latent references and both kinds of source,
each latent style gives a matching avatar + voice pair.

The manifest (manifest.json + manifest.csv) records every input, seed, model and setting, and
each item's status ("done" / "failed" with the reason). Running the same plan into the same
folder again skips finished items; a different plan there is refused instead of mixed in.
Used by the app's Batch tab and by `xfavot export`; no Qt here.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import audio, checkpoint
from .audio import AUDIO_EXTS
from .errors import UserError, require_format
from .face import IMAGE_EXTS

MANIFEST = "manifest.json"
FORMAT = "xfavot-export"


@dataclass
class ExportPlan:
    faces: list[str] = field(default_factory=list)        # source faces
    voices: list[str] = field(default_factory=list)       # source voices
    ref_voices: list[str] = field(default_factory=list)
    ref_faces: list[str] = field(default_factory=list)
    latents: int = 0
    latent_domains: list[str] = field(default_factory=lambda: ["female", "male"])
    seed: int = 0
    gender: str | None = None                              # for reference styles; None = estimate
    voice_format: str = "wav"

    def settings(self) -> dict:
        return asdict(self)

    @classmethod
    def from_paths(cls, faces=(), voices=(), ref_voices=(), ref_faces=(), **settings) -> "ExportPlan":
        """Folders and/or files per role, expanded to the media files they hold."""
        def gather(paths, exts):
            return [f for p in paths if p for f in files_in(p, exts)]

        return cls(faces=gather(faces, IMAGE_EXTS), voices=gather(voices, AUDIO_EXTS),
                   ref_voices=gather(ref_voices, AUDIO_EXTS), ref_faces=gather(ref_faces, IMAGE_EXTS), **settings)


@dataclass
class Reference:
    id: str
    kind: str                 # "voice", "face", "latent"
    path: str = ""
    domain: str = ""
    seed: int | None = None


@dataclass
class Item:
    id: str
    output_kind: str          # "face" or "voice"
    source: str
    reference: Reference
    output: str               # relative to the export folder
    status: str = "pending"   # "done", "failed"
    error: str = ""
    seconds: float = 0.0

    def row(self) -> dict:
        return {"id": self.id, "output_kind": self.output_kind, "source": self.source,
                "reference_kind": self.reference.kind, "reference": self.reference.path or self.reference.id,
                "domain": self.reference.domain, "seed": "" if self.reference.seed is None else self.reference.seed,
                "output": self.output, "status": self.status, "error": self.error, "seconds": round(self.seconds, 3)}


def files_in(folder: str | Path, exts: set[str]) -> list[str]:
    """Sorted media files directly in a folder (or the file itself)."""
    folder = Path(folder)
    if folder.is_file():
        return [str(folder)]
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    return [str(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts]


def _unique_stems(paths: list[str]) -> list[str]:
    """File stems, made unique (a.png and a.jpg -> a, a-2) so outputs never overwrite each other."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = Path(p).stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def references(plan: ExportPlan) -> list[Reference]:
    refs = [Reference(f"voice-{s}", "voice", p) for p, s in zip(plan.ref_voices, _unique_stems(plan.ref_voices))]
    refs += [Reference(f"face-{s}", "face", p) for p, s in zip(plan.ref_faces, _unique_stems(plan.ref_faces))]
    if plan.latents and not plan.latent_domains:
        raise UserError("latent references need at least one domain")
    for i in range(plan.latents):
        domain, seed = plan.latent_domains[i % len(plan.latent_domains)], plan.seed + i
        refs.append(Reference(f"latent-{domain}-s{seed}", "latent", domain=domain, seed=seed))
    return refs


def build_items(plan: ExportPlan) -> list[Item]:
    refs = references(plan)
    if not refs:
        raise UserError("nothing to export: give reference voices, reference faces or a number of latent samples")
    if not (plan.faces or plan.voices):
        raise UserError("nothing to export: give source faces and/or source voices")
    if plan.voice_format not in ("wav", "flac"):
        raise UserError(f"voice format {plan.voice_format!r}: use wav or flac")
    items = []
    for kind, sources, folder, suffix in (("face", plan.faces, "faces", ".png"),
                                          ("voice", plan.voices, "voices", f".{plan.voice_format}")):
        for src, stem in zip(sources, _unique_stems(sources)):
            for ref in refs:
                item_id = f"{kind}:{stem}__{ref.id}"
                items.append(Item(item_id, kind, src, ref, f"{folder}/{stem}__{ref.id}{suffix}"))
    return items


def _model_record(engine) -> dict:
    info = engine.info
    return {"path": info.path, "preset": info.preset, "steps": info.steps, "vocoder": info.vocoder,
            "description": info.meta.get("description", "")}


def _load_previous(out: Path, settings: dict, model: dict) -> dict[str, dict]:
    """Finished items of an earlier run of the same export; refuses a different one."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} exists but cannot be read ({exc}); choose an empty output folder")
    require_format(old, FORMAT, f"{out} holds a {MANIFEST} that is not an XFaVoT export; choose an empty output folder")
    if old.get("settings") != settings or old.get("model", {}).get("path") != model["path"]:
        raise UserError(f"{out} holds an export with other inputs, settings or model; "
                        "choose another output folder to start a new export")
    return {i["id"]: i for i in old.get("items", []) if i.get("status") == "done" and (out / i["output"]).is_file()}


def _write_manifest(out: Path, settings: dict, model: dict, items: list[Item], started: str) -> None:
    doc = {"format": FORMAT, "version": 1, "started": started, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "model": model, "settings": settings,
           "items": [{**asdict(i), "reference": asdict(i.reference)} for i in items]}
    checkpoint.atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(items[0].row()))
    writer.writeheader()
    writer.writerows(i.row() for i in items)
    checkpoint.atomic_write(out / "manifest.csv", lambda tmp: Path(tmp).write_text(buf.getvalue()))


@dataclass
class ExportSummary:
    total: int
    done: int
    skipped: int            # finished in an earlier run
    failed: list[tuple[str, str]]   # (item id, reason)
    cancelled: bool
    folder: str

    def text(self) -> str:
        parts = [f"{self.done} of {self.total} items written to {self.folder}"]
        if self.skipped:
            parts.append(f"{self.skipped} were already done")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.cancelled:
            parts.append("cancelled")
        return "; ".join(parts)


def _style_for(engine, ref: Reference, gender: str | None, cache: dict):
    if ref.id not in cache:
        try:
            if ref.kind == "voice":
                cache[ref.id] = engine.style_of_voice(ref.path, gender)
            elif ref.kind == "face":
                cache[ref.id] = engine.style_of_face(ref.path, gender)
            else:
                cache[ref.id] = engine.sample_style(ref.domain, ref.seed)
        except UserError as exc:
            cache[ref.id] = exc
    return cache[ref.id]


def run_export(engine, plan: ExportPlan, out: str | Path,
               on_progress: Callable[[int, int, Item], None] | None = None,
               should_cancel: Callable[[], bool] | None = None) -> ExportSummary:
    """Run (or resume) an export. Bad inputs fail their items with a reason; the rest go on."""
    out = Path(out)
    items = build_items(plan)
    settings, model = plan.settings(), _model_record(engine)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out}: {exc}")
    previous = _load_previous(out, settings, model)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    for item in items:
        if item.id in previous:
            item.status, item.seconds = "done", previous[item.id].get("seconds", 0.0)
    skipped = sum(i.status == "done" for i in items)
    styles: dict = {}
    cancelled, last_write, done_now = False, 0.0, 0
    for n, item in enumerate(items, 1):
        if item.status == "done":
            continue
        if should_cancel and should_cancel():
            cancelled = True
            break
        t0 = time.perf_counter()
        style = _style_for(engine, item.reference, plan.gender, styles)
        try:
            if isinstance(style, UserError):
                raise UserError(f"reference {item.reference.path or item.reference.id}: {style}")
            target = out / item.output
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.output_kind == "face":
                img = engine.face_from_style(item.source, style)
                checkpoint.atomic_write(target, lambda tmp: img.save(tmp, format="PNG"))
            else:
                wav = engine.voice_from_style(item.source, style)
                checkpoint.atomic_write(target, lambda tmp: audio.save_audio(tmp, wav, fmt=plan.voice_format))
            item.status, item.error = "done", ""
            done_now += 1
        except UserError as exc:
            item.status, item.error = "failed", str(exc)
        except (OSError, RuntimeError) as exc:  # a full disk, an out-of-memory: recorded, the rest goes on
            item.status, item.error = "failed", f"{type(exc).__name__}: {exc}"
        item.seconds = time.perf_counter() - t0
        if time.perf_counter() - last_write > 2.0:  # a crash loses at most ~2 s of work
            _write_manifest(out, settings, model, items, started)
            last_write = time.perf_counter()
        if on_progress:
            on_progress(n, len(items), item)
    _write_manifest(out, settings, model, items, started)
    failed = [(i.id, i.error) for i in items if i.status == "failed"]
    return ExportSummary(len(items), skipped + done_now, skipped, failed, cancelled, str(out))
