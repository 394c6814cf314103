"""`xfavot` training commands: train, finetune, train-aux, train-vocoder, pretrain-image,
attach-vocoder, attach-readouts, eval.
Thin handlers over training/ (training/cli.py holds the argument sets that torchrun shares)."""
from __future__ import annotations

from core.config import DEVICE_CHOICES

from .cli_inference import _add_vocoder_choice


def add_commands(sub) -> None:
    from training.cli import (
        add_aux_arguments,
        add_finetune_arguments,
        add_pretrain_image_arguments,
        add_train_arguments,
        add_vocoder_arguments,
    )

    add_train_arguments(sub.add_parser("train", help="train an XFaVoT model (see training/cli.py)"))
    add_finetune_arguments(sub.add_parser("finetune", help="adapt a model to a custom avatar set (image side)"))
    add_aux_arguments(sub.add_parser("train-aux", help="train the JDC F0 and content (ASR) networks on a corpus"))
    add_vocoder_arguments(sub.add_parser("train-vocoder", help="train a HiFiGAN / Parallel WaveGAN vocoder on our mels"))
    add_pretrain_image_arguments(sub.add_parser(
        "pretrain-image", help="pre-train G_I and E_I on rendered face pairs (a stage before `xfavot train`)"))
    p = sub.add_parser("attach-vocoder", help="embed a trained vocoder in a model checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--vocoder", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("attach-readouts", help="fit and embed a model's face-gender and voice-register read-outs")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--corpus", required=True, help="synthetic corpus whose training faces it is fitted on")
    p.add_argument("--out", required=True)

    p = sub.add_parser("eval", help="quality report of a model on a synthetic corpus's held-out speakers")
    p.add_argument("--checkpoint", help="model to evaluate (default: the embedded model)")
    p.add_argument("--corpus", required=True, help="synthetic corpus folder (its test speakers are used)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    _add_vocoder_choice(p)
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="held-out speakers to report on (test), or to compare recipes on (val)")
    p.add_argument("--vocoder-file", help="a vocoder file to use instead of the checkpoint's")
    p.add_argument("--real-speech", metavar="DIR", help="also check real voices: `xfavot data real` folder (its test speakers; "
                   "its training speakers with --split val)")
    p.add_argument("--retrieval-speakers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)

    handlers = {"train": run_train, "finetune": run_finetune, "train-aux": run_train_aux,
                "train-vocoder": run_train_vocoder, "pretrain-image": run_pretrain_image,
                "attach-vocoder": run_attach_vocoder, "attach-readouts": run_attach_readouts, "eval": run_eval}
    for name, handler in handlers.items():
        sub.choices[name].set_defaults(handler=handler)



def run_train(args) -> None:
    from training.cli import run_train

    run_train(args)


def run_finetune(args) -> None:
    from training.cli import run_finetune_cli

    run_finetune_cli(args)


def run_train_aux(args) -> None:
    from training.cli import run_train_aux

    run_train_aux(args)


def run_train_vocoder(args) -> None:
    from training.cli import run_train_vocoder

    run_train_vocoder(args)


def run_pretrain_image(args) -> None:
    from training.cli import run_pretrain_image

    run_pretrain_image(args)


def run_attach_vocoder(args) -> None:
    from training.vocoder import attach_vocoder

    attach_vocoder(args.checkpoint, args.vocoder, args.out)
    print(args.out)


def run_attach_readouts(args) -> None:
    from training.readouts import attach_readouts

    info = attach_readouts(args.checkpoint, args.corpus, args.out)
    for name, fit in info.items():
        print(f"{args.out}: {name} read-out, " + ", ".join(f"{k} {v:.3g}" for k, v in fit.items()))


def run_eval(args) -> None:
    from core.engine import resolve_checkpoint
    from training.evaluate import evaluate, markdown

    report = evaluate(resolve_checkpoint(args.checkpoint), args.corpus, args.out, args.device,
                      args.retrieval_speakers, seed=args.seed, vocoder=args.vocoder, split=args.split,
                      vocoder_file=args.vocoder_file, real_speech=args.real_speech)
    print(markdown(report))
