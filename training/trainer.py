"""The XFaVoT trainer: `Trainer(...).run()` or step-by-step `Trainer.step()` (the app drives it).

One iteration = one StepPlan (training/data/sampler.py): a discriminator update (D_I, D_A, C_A)
then a generator update (G_I, G_A, E_I, E_A, M), both from training/objective.py, then the EMA.
This file keeps setup (networks, optimisers, DDP), the loop, checkpoints and callbacks; the
run folder is training/rundir.py, previews and validation training/previews.py.

Everything random in a step comes from generators seeded by (seed, step, rank), so a run resumed
from a checkpoint replays exactly what an uninterrupted run does.
"""
from __future__ import annotations

import copy
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from core import checkpoint
from core.config import ModelConfig, preset
from core.engine import autocast_dtype
from core.errors import UserError
from core.model import EMA_MODULES, build_networks

from . import objective, state
from .batches import BatchBuilder, Prefetcher
from .config import TrainConfig
from .data.datasets import Dataset
from .data.sampler import StepPlan, Table1Sampler
from .previews import Previews
from .rundir import RunDir

log = logging.getLogger(__name__)

IMAGE_SIDE = ("generator_image", "style_encoder_image", "discriminator_image", "mapping")
AUDIO_SIDE = ("generator_audio", "style_encoder_audio", "discriminator_audio", "classifier_audio")
DISCRIMINATORS = ("discriminator_image", "discriminator_audio", "classifier_audio")
GENERATOR_SIDE = ("generator_image", "generator_audio", "style_encoder_image", "style_encoder_audio", "mapping")
FROZEN = ("jdc", "content")


def network_names(value: str | tuple | list) -> tuple[str, ...]:
    """A setting naming networks (`--set init_fresh=G` or `=["G", "D"]`) as a tuple of names."""
    return (value,) if isinstance(value, str) else tuple(value)


def speaker_domains(data: Dataset) -> list[str]:
    """Speaker-identity domains: training speakers with real voices and a real identity."""
    return [s.id for s in data.speakers if s.split == "train" and s.voices and s.identity]


class Trainer:
    def __init__(self, data: Dataset, out_dir: str | Path, cfg: TrainConfig, model_cfg: ModelConfig | None = None,
                 device: str = "cpu", init_from: str | Path | list | None = None, rank: int = 0, world_size: int = 1,
                 on_progress: Callable[[dict], None] | None = None, on_samples: Callable[[dict], None] | None = None,
                 finetune: bool = False, model_overrides: dict | None = None):
        """finetune=True: adapt the image side only (G_I, E_I, D_I) from `init_from`; the mapping
        network and the audio side stay frozen, so the shared style space is kept (paper Fig. 7).
        model_overrides: architecture settings over cfg.preset's (a new model only).
        init_from: one checkpoint, or several loaded in order (a later file's networks replace an earlier's)."""
        self.cfg, self.run_dir, self.out = cfg, RunDir(out_dir), Path(out_dir)
        self.finetune = finetune
        self.trained_d = ("discriminator_image",) if finetune else DISCRIMINATORS
        self.trained_g = ("generator_image", "style_encoder_image") if finetune else GENERATOR_SIDE
        only = network_names(cfg.train_only)
        if only:
            unknown = sorted(set(only) - set(self.trained_d + self.trained_g))
            if unknown:
                raise UserError(f"train_only names networks this run cannot train: {', '.join(unknown)}")
            self.trained_d = tuple(n for n in self.trained_d if n in only)
            self.trained_g = tuple(n for n in self.trained_g if n in only)
            if not self.trained_d or not self.trained_g:  # each phase's loss needs something to update
                raise UserError("train_only must name a discriminator-side network (e.g. discriminator_audio) "
                                "and a generator-side one (e.g. generator_audio)")
        self.rank, self.world = rank, world_size
        self.device = torch.device(device)
        self.on_progress, self.on_samples = on_progress, on_samples
        self._stop, self._paused = threading.Event(), threading.Event()
        self.train_data = data.split("train")
        val_data = Dataset(data.name, [s for s in data.speakers if s.split == "val" and s.faces and s.voices])
        self.train_data.validate(need_both_genders=True, need_faces=True, need_voices=not finetune)
        domains = speaker_domains(self.train_data) if model_cfg is None or not finetune else list(model_cfg.speakers)
        if model_cfg is None:
            model_cfg = preset(cfg.preset, speakers=tuple(domains), **(model_overrides or {}))
        if not finetune and tuple(model_cfg.speakers) != tuple(domains):
            raise UserError(f"the model has {len(model_cfg.speakers)} speaker domains but the data has "
                            f"{len(domains)} training speakers with voices")
        self.model_cfg = model_cfg
        torch.manual_seed(cfg.seed)  # every DDP rank starts from the same weights
        self.nets = build_networks(model_cfg)
        fresh = network_names(cfg.init_fresh)
        if fresh and not init_from:
            raise UserError("init_fresh names networks to leave out of --init, but no --init was given")
        starts = [init_from] if isinstance(init_from, (str, Path)) else list(init_from or ())
        self.steps_before = max((state.load_matching_weights(self.nets, path, fresh) for path in starts), default=0)
        self.nets.to(self.device)
        if self.device.type == "cuda" and cfg.channels_last:
            for name in ("generator_image", "style_encoder_image", "discriminator_image"):
                self.nets[name].to(memory_format=torch.channels_last)
        if cfg.compile:  # in place: parameter names (and so checkpoints) stay the same
            for name in GENERATOR_SIDE + DISCRIMINATORS:
                self.nets[name].compile()
        for name in self.nets:
            if name in FROZEN or name not in self.trained_d + self.trained_g:
                self.nets[name].eval().requires_grad_(False)
        self.ema = copy.deepcopy(torch.nn.ModuleDict({k: self.nets[k] for k in EMA_MODULES})).eval()
        self.ema.requires_grad_(False)
        self.optims = self._optimizers()
        # each phase computes only the parts of the objective that reach the networks it updates
        self.d_parts = objective.Parts.of(self.trained_d, with_voices=not finetune)
        self.g_parts = objective.Parts.of(self.trained_g, with_voices=not finetune)
        d_fn = lambda nets, plan, b, step: objective.d_loss(nets, cfg, plan, b, step, self.d_parts)  # noqa: E731
        g_fn = lambda nets, plan, b, step: objective.g_loss(nets, cfg, plan, b, step, self.g_parts)  # noqa: E731
        self.d_phase = self._wrap(objective.Phase(self.nets, self.trained_d, d_fn))
        self.g_phase = self._wrap(objective.Phase(self.nets, self.trained_g, g_fn))
        self.sampler = Table1Sampler(self.train_data, cfg.batch_size, [] if finetune else domains, seed=cfg.seed,
                                     speaker_head_prob=cfg.speaker_head_prob, rank=rank, world_size=world_size,
                                     need_voices=not finetune, kind_weights=cfg.kind_weights or None)
        self.batches = BatchBuilder(self.train_data, model_cfg.img_size, cfg.crop_frames, model_cfg.mel_frontend,
                                    model_cfg.genders, model_cfg.latent_dim, self.sampler.domain_of, cfg.mic_augment,
                                    None if finetune else lambda step: objective.pair_weight(cfg, step))
        self.prefetch = Prefetcher(self._make_batch)
        self.previews = Previews(model_cfg, self.train_data, val_data, cfg.crop_frames, self.device)
        self.step_no = 0
        self.train_seconds = 0.0  # time spent in steps (not in evaluation): the learning curve's x axis
        self.started = time.perf_counter()
        self._amp = autocast_dtype(self.device, cfg.amp)

    # -- setup --------------------------------------------------------------------------------
    def _wrap(self, phase: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return phase
        from torch.nn.parallel import DistributedDataParallel

        # heads not used in a step (mapping domains, C_A's other head) get no gradient
        return DistributedDataParallel(phase, find_unused_parameters=True, broadcast_buffers=False,
                                       device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.cfg
        trained = set(self.trained_d + self.trained_g)
        optims = {}
        for name in (n for n in IMAGE_SIDE + AUDIO_SIDE if n in trained):
            lr = c.lr_mapping if name == "mapping" else (c.lr_d or c.lr) if name in DISCRIMINATORS else c.lr
            if name in IMAGE_SIDE:
                optims[name] = torch.optim.Adam(self.nets[name].parameters(), lr=lr, betas=c.betas,
                                                weight_decay=c.weight_decay)
            else:
                optims[name] = torch.optim.AdamW(self.nets[name].parameters(), lr=lr, betas=c.betas,
                                                 weight_decay=c.weight_decay, eps=c.adamw_eps)
        return optims

    # -- one iteration ------------------------------------------------------------------------
    def _make_batch(self, step: int) -> tuple[StepPlan, dict]:
        plan = self.sampler.plan(step)
        return plan, self.batches.build(plan, np.random.default_rng([self.cfg.seed, step, self.rank, 7]))

    def step(self) -> dict[str, float]:
        """One training iteration; returns the logged loss values."""
        plan, b = self.prefetch.get(self.step_no)
        for name in self.trained_d + self.trained_g:
            self.nets[name].train()
        b = {k: v.to(self.device, non_blocking=True) for k, v in b.items()}
        if self.device.type == "cuda" and self.cfg.channels_last:
            b.update({k: b[k].contiguous(memory_format=torch.channels_last)
                      for k in ("x_img", "ref_img", "ref_img2") if k in b})
        d_losses = self._update(self.d_phase, self.trained_d, plan, b)
        g_losses = self._update(self.g_phase, self.trained_g, plan, b)
        self._update_ema()
        self.step_no += 1
        return {**d_losses, **g_losses, "kind": plan.kind, "domain_type": plan.domain_type,
                "ref_image_g": plan.image_reference, "ref_audio_g": plan.audio_reference}

    def _update(self, phase, names: tuple[str, ...], plan: StepPlan, b: dict) -> dict[str, float]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._amp is not None):
            loss, logs = phase(plan, b, self.step_no)
        for name in names:
            self.optims[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            self.optims[name].step()
        return {k: float(v) for k, v in logs.items()}

    def _update_ema(self) -> None:
        names = [n for n in EMA_MODULES if n in self.trained_g]
        state.update_ema(self.ema, self.nets, names, state.ema_decay(self.step_no, self.cfg.ema_beta))

    # -- validation, samples, checkpoints -----------------------------------------------------
    def validate(self) -> dict[str, float]:
        return self.previews.retrieval(self.ema)

    def write_samples(self) -> dict:
        result = self.previews.write(self.ema, self.nets["jdc"], self.run_dir.samples, self.step_no,
                                     with_voice=not self.finetune)
        if self.on_samples:
            self.on_samples(result)
        return result

    def save_checkpoint(self, metrics: dict | None = None, pin: bool = False) -> Path:
        if self.rank != 0:
            return self.out / "none"
        tensors, optim_meta = state.pack(self.nets, self.ema, self.optims, DISCRIMINATORS + FROZEN)
        after = f" after {self.steps_before} of the run it started from" if self.steps_before else ""
        meta = {"steps": self.step_no, "steps_before": self.steps_before, "train_seconds": round(self.train_seconds, 2),
                "train_config": self.cfg.to_dict(), "optimizers": optim_meta, "data": self.train_data.summary(),
                "metrics": metrics or {}, "trained": True,
                "description": f"XFaVoT {self.model_cfg.preset} model trained {self.step_no} steps{after} "
                               f"on {self.train_data.name}"}
        header = checkpoint.model_header(self.model_cfg, meta, EMA_MODULES + DISCRIMINATORS + FROZEN)
        run_state = {"finetune": self.finetune, "train_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict()}
        return self.run_dir.save(self.step_no, tensors, header, run_state, self.cfg.keep_last,
                                 (metrics or {}).get("val/retrieval_top1"), pin=pin)

    def load_checkpoint(self, path: str | Path) -> None:
        tensors, header = checkpoint.load_tensors(path)
        meta = header["meta"]
        state.unpack(tensors, meta["optimizers"], self.nets, self.ema, self.optims, DISCRIMINATORS + FROZEN)
        self.step_no = int(meta["steps"])
        self.steps_before = int(meta.get("steps_before", 0))
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self.nets.to(self.device)
        self.ema.to(self.device)

    @classmethod
    def resume(cls, data: Dataset, out_dir: str | Path, steps: int | None = None, **kwargs) -> "Trainer":
        run_dir = RunDir(out_dir)
        run_state = run_dir.state()
        cfg = TrainConfig.from_dict(run_state["train_config"])
        if steps is not None:
            cfg.steps = steps  # only the total changes; ds_iter etc. keep the original schedule
        kwargs.setdefault("finetune", run_state.get("finetune", False))
        trainer = cls(data, out_dir, cfg, ModelConfig.from_dict(run_state["model_config"]), **kwargs)
        trainer.load_checkpoint(run_dir.latest())
        run_dir.truncate_log(trainer.step_no)
        return trainer

    def _curve_point(self, path: Path) -> None:
        from . import curve

        point = curve.record(self.run_dir, path, self.step_no, self.train_seconds / 3600, self.cfg.eval_corpus,
                             self.cfg.eval_split, self.cfg.eval_vocoder, str(self.device))
        self._log({f"curve/{k}": v for k, v in point.items() if isinstance(v, float)})

    def _unevaluated_checkpoint(self) -> Path | None:
        """The resumed-from checkpoint when its curve point is due but missing (the run stopped
        while evaluating it, or between saving and evaluating)."""
        from . import curve

        c = self.cfg
        if not (c.eval_every and c.eval_corpus and self.rank == 0 and self.step_no and self.step_no % c.eval_every == 0):
            return None
        if any(p["step"] == self.step_no for p in curve.read_points(self.run_dir.curve / "curve.jsonl")):
            return None
        return self.run_dir.latest()

    # -- the loop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        """Hold the loop between steps (the app's Pause); stop still works while paused."""
        (self._paused.set if paused else self._paused.clear)()

    def _log(self, values: dict) -> None:
        if self.rank != 0:
            return
        self.run_dir.append_log({"step": self.step_no, "time": round(time.perf_counter() - self.started, 2), **values})
        self.run_dir.log_scalars(self.step_no, values)

    def run(self, progress: bool = True) -> dict:
        """Train up to cfg.steps; stops cleanly (with a checkpoint) on request_stop or SIGINT/SIGTERM."""
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        if self.cfg.warm_cache:
            self.batches.warm(workers=2, progress=progress and self.rank == 0)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda *_: self.request_stop())
        c = self.cfg
        unevaluated = self._unevaluated_checkpoint()
        if unevaluated is not None:
            self._curve_point(unevaluated)
        bar = tqdm(total=c.steps, initial=self.step_no, desc="train", disable=not progress or self.rank != 0)
        last: dict = {}
        start_step, t0 = self.step_no, time.perf_counter()
        try:
            while self.step_no < c.steps and not self._stop.is_set():
                if self._paused.is_set():
                    self._stop.wait(0.1)
                    t0, start_step = time.perf_counter(), self.step_no  # a pause does not count in the ETA
                    continue
                t_step = time.perf_counter()
                values = self.step()
                self.train_seconds += time.perf_counter() - t_step
                numbers = {k: v for k, v in values.items() if isinstance(v, float)}
                bad = [k for k, v in numbers.items() if not math.isfinite(v)]
                if bad:
                    raise RuntimeError(f"non-finite losses at step {self.step_no}: {bad}")
                last = values
                due = lambda every: self.step_no % every == 0 or self.step_no == c.steps  # noqa: E731
                if due(c.log_every):
                    self._log(values)
                metrics = self.validate() if self.rank == 0 and due(c.val_every) else {}
                if metrics:
                    self._log(metrics)
                # a first preview right away, then every sample_every steps
                if self.rank == 0 and (self.step_no == 1 or due(c.sample_every)):
                    self.write_samples()
                curve_due = c.eval_every and c.eval_corpus and self.rank == 0 and due(c.eval_every)
                if due(c.checkpoint_every) or curve_due:
                    saved = self.save_checkpoint(metrics, pin=bool(curve_due))
                    if curve_due:
                        self._curve_point(saved)
                bar.update()
                rate = (self.step_no - start_step) / max(time.perf_counter() - t0, 1e-9)
                if self.on_progress:
                    self.on_progress({"step": self.step_no, "total": c.steps, "losses": numbers,
                                      "eta_s": (c.steps - self.step_no) / max(rate, 1e-9)})
            if self._stop.is_set() and self.step_no % c.checkpoint_every != 0:
                self.save_checkpoint()
        finally:
            self.prefetch.close()
            self.prefetch = Prefetcher(self._make_batch)  # run() may be called again (resume in the app)
            bar.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
            self.run_dir.close()
        return {"step": self.step_no, "stopped": self._stop.is_set(), "last": last}
