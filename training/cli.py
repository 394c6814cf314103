"""`xfavot train` / `xfavot finetune` and `python -m training` (torchrun entry point).

    xfavot train --data CORPUS_DIR --preset {small,paper,tiny} --steps N --out RUN_DIR [--device D] [--resume]
    torchrun --nproc_per_node 2 -m training train --data ... --out RUN_DIR
--data takes a synthetic corpus folder, or LAYOUT:PATH (celeba-hq:, vctk:, prepared-av:, synthetic:),
repeatable to train on several datasets together (e.g. CelebA-HQ + VCTK as in the paper).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from core.config import DEVICE_CHOICES, PRESET_NAMES
from core.errors import UserError

from .config import VOCODER_KINDS


def _common_arguments(p: argparse.ArgumentParser, out: str, data: bool = True, preset: bool = True,
                      batch_default: int | None = None) -> None:
    if data:
        p.add_argument("--data", action="append", required=True, metavar="[LAYOUT:]PATH")
    if preset:
        p.add_argument("--preset", default="cpu", choices=PRESET_NAMES)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, metavar=out)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--batch-size", type=int, default=batch_default)
    p.add_argument("--seed", type=int, default=0)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, "RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR up to --steps")
    p.add_argument("--aux", help="checkpoint whose trained JDC and content network to use")
    p.add_argument("--init", metavar="CKPT", action="append", help="start from every weight of CKPT that fits this "
                   "model (e.g. an earlier run's checkpoint); the schedules start from step 0. Repeatable: later "
                   "files' networks replace earlier ones' (e.g. a run, then `xfavot pretrain-image`'s G_I and E_I)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--sample-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (CUDA)")
    p.add_argument("--eval-every", type=int, help="run `xfavot eval` on a checkpoint every N steps (learning curve)")
    p.add_argument("--eval-corpus", help="synthetic corpus whose held-out speakers the learning curve uses")
    p.add_argument("--eval-split", choices=["val", "test"], help="held-out speakers for the curve (default test)")
    p.add_argument("--eval-vocoder", help="vocoder file for the curve's voice measures (default Griffin-Lim)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting of the preset (training/config.py), e.g. --set rec_warmup=0")
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the preset's architecture (core/config.py ModelConfig), e.g. --model-set img_rgb_norm=true")


def add_aux_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, "AUX.safetensors", batch_default=8)
    p.add_argument("--init", metavar="FILE", help="start JDC from this file's (the content network starts afresh)")
    p.add_argument("--f0-loss", default="hz", choices=["hz", "octaves"],
                   help="JDC's F0 regression: L1 in Hz (StarGANv2-VC) or of log2 F0 (contours of low voices count alike)")


def run_train_aux(args) -> dict:
    from core.config import preset
    from core.engine import resolve_device

    from .auxiliary import train_auxiliary

    data = load_data(args.data)
    data.validate(need_both_genders=False, need_voices=True)
    metrics = train_auxiliary(data, preset(args.preset), args.steps, args.out, str(resolve_device(args.device)),
                              args.batch_size, args.seed, init=args.init, f0_loss=args.f0_loss)
    print(f"{args.out}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if v is not None))
    return metrics


def add_vocoder_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, "VOCODER.safetensors", preset=False, batch_default=8)
    p.add_argument("--kind", default="vocos", choices=VOCODER_KINDS)
    p.add_argument("--adversarial-start", type=int, help="step from which the GAN losses join (default: never)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", metavar="FILE", help="start from this vocoder file, or the vocoder embedded in this model file")
    p.add_argument("--gta-model", metavar="MODEL", help="also teach each clip with the mel MODEL's audio generator makes "
                   "of it restyled with its own voice (ground-truth-aligned fine-tuning)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the kind's)")
    p.add_argument("--magnitude-weight", type=float, default=0.0, help="Vocos: teach its head's magnitudes to be "
                   "the waveform's own STFT magnitudes (log L1, this weight)")
    p.add_argument("--phase-iterations", type=int, help="Vocos: Griffin-Lim steps from its own phase at "
                   "inference, stored in the file (sound only after --magnitude-weight training; default: "
                   "--init's, else 0)")


def run_train_vocoder(args) -> dict:
    from core.engine import resolve_device

    from .vocoder import train_vocoder

    data = load_data(args.data)
    data.validate(need_both_genders=False, need_voices=True)
    result = train_vocoder(data, args.steps, args.out, args.kind, str(resolve_device(args.device)), args.batch_size,
                           adversarial_start=args.adversarial_start, checkpoint_every=args.checkpoint_every,
                           resume=args.resume, seed=args.seed, init=args.init, gta_model=args.gta_model, lr=args.lr,
                           magnitude_weight=args.magnitude_weight, phase_iterations=args.phase_iterations)
    print(f"{args.out}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in result.items() if not isinstance(v, dict)))
    return result


def add_pretrain_image_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, "IMAGE.safetensors", data=False, batch_default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the preset's architecture, as for `xfavot train` (give the same to both)")
    p.add_argument("--init", metavar="MODEL", help="start from this model's G_I and E_I (its architecture); OUT is then "
                   "MODEL with the trained networks replaced")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train G_I alone; E_I (and the style space the rest of MODEL was fitted to) stays")
    p.add_argument("--adversarial", type=float, default=0.0, metavar="WEIGHT",
                   help="add a PatchGAN's loss with this weight beside the pair L1 (sharper eyes and edges; "
                   "the recipe's stage 5g uses 0.03); 0: none")
    p.add_argument("--detail", type=float, default=0.0, metavar="WEIGHT",
                   help="add an L1 between the output's and the target's Laplacians with this weight (the colour "
                   "of fine detail: eyes without coloured specks; the recipe's stage 5h uses 1); 0: none")


def run_pretrain_image(args) -> dict:
    from core.config import ModelConfig, preset
    from core.engine import resolve_device

    from .pretrain_image import pretrain_image

    if args.init and args.model_set:
        raise UserError("--model-set does not apply with --init: the architecture is the initial model's")
    if args.freeze_encoder and not args.init:
        raise UserError("--freeze-encoder keeps a trained E_I: give the model with --init")
    model_cfg = None if args.init else preset(args.preset, **parse_settings(args.model_set, ModelConfig, "--model-set"))
    stop = threading.Event()  # Ctrl-C / SIGTERM: save a checkpoint at the next step and exit
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = pretrain_image(model_cfg, args.out, args.steps, str(resolve_device(args.device)), args.batch_size,
                                args.lr, args.seed, args.resume, args.checkpoint_every,
                                should_stop=lambda step: stop.is_set(), init=args.init,
                                freeze_encoder=args.freeze_encoder, adversarial=args.adversarial,
                                detail=args.detail)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print(f"{args.out}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())
          + (" (stopped early; --resume continues)" if stop.is_set() else ""))
    return result


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--avatars", required=True, help="folder of avatar images ([female/ male/] subfolders optional)")
    p.add_argument("--voices", help="optional folder of voice clips")
    p.add_argument("--from", dest="base", required=True, metavar="CKPT", help="the model to adapt")
    _common_arguments(p, "RUN_DIR", data=False, preset=False)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sample-every", type=int)


def run_finetune_cli(args) -> dict:
    from core.engine import resolve_device

    from .finetune import run_finetune
    from .rundir import RunDir

    if not args.resume:
        RunDir(args.out).refuse_existing()
    trainer = run_finetune(args.avatars, args.voices, args.base, args.steps, args.out, str(resolve_device(args.device)),
                           args.resume, args.batch_size, args.seed, args.sample_every)
    print(trainer.train_data.summary())
    result = trainer.run()
    print(f"{args.out}: step {result['step']}" + (" (stopped early; --resume continues)" if result["stopped"] else ""))
    return result


def parse_settings(pairs: list[str], config_class=None, flag: str = "--set") -> dict:
    """KEY=VALUE pairs -> overrides of config_class (default TrainConfig), each value parsed as JSON
    when it can be (numbers, true/false, lists) and kept as a string otherwise."""
    import dataclasses
    import json

    from .config import TrainConfig

    known = {f.name for f in dataclasses.fields(config_class or TrainConfig)} - {"preset", "speakers", "genders"}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise UserError(f"{flag} {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_data(specs: list[str]):
    from .data import datasets

    loaders = datasets.LOADERS
    parts = []
    for spec in specs:
        layout, _, path = spec.partition(":") if ":" in spec and spec.split(":", 1)[0] in loaders else ("synthetic", "", spec)
        parts.append(loaders[layout](path))
    data = parts[0] if len(parts) == 1 else datasets.combine(*parts)
    data.log_skipped()
    return data


def distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun; initialises the process group (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def run_train(args) -> dict:
    from core.engine import resolve_device

    from .config import train_preset
    from .rundir import RunDir
    from .trainer import Trainer

    rank, world = distributed()
    device = str(resolve_device(args.device))
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    data = load_data(args.data)
    common = dict(device=device, rank=rank, world_size=world)
    if args.resume:
        given = [flag for flag, value in (("--init", args.init), ("--aux", args.aux), ("--set", args.set),
                                          ("--model-set", args.model_set)) if value]
        if given and rank == 0:  # a recipe may pass them on every call: a note, not an error
            logging.getLogger(__name__).warning(f"--resume continues {args.out} with the settings it was started with; "
                                                f"{', '.join(given)} ignored")
        trainer = Trainer.resume(data, args.out, steps=args.steps, **common)
    else:
        RunDir(args.out).refuse_existing()
        overrides = {k: v for k, v in dict(batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                                           sample_every=args.sample_every, log_every=args.log_every,
                                           eval_every=args.eval_every, eval_corpus=args.eval_corpus,
                                           eval_split=args.eval_split, eval_vocoder=args.eval_vocoder).items() if v}
        overrides.update(parse_settings(args.set))
        cfg = train_preset(args.preset, steps=args.steps, seed=args.seed, compile=args.compile, **overrides)
        if args.init and args.aux:
            raise UserError("--init already brings the JDC and content networks: give --init or --aux, not both")
        from core.config import ModelConfig

        trainer = Trainer(data, args.out, cfg, init_from=args.init or args.aux,
                          model_overrides=parse_settings(args.model_set, ModelConfig, "--model-set"), **common)
    if rank == 0:
        print(trainer.train_data.summary())
    result = trainer.run()
    if rank == 0:
        print(f"{args.out}: step {result['step']}" + (" (stopped early; --resume continues)" if result["stopped"] else ""))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train"))
    args = parser.parse_args(argv)
    import sys

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        run_train(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
