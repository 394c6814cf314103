"""`xfavot`: the command-line face of the engine.

A user error prints one line `error: ...` on stderr and exits with status 2; `--debug` shows
the traceback instead. Warnings (e.g. the face-alignment fallback) print as `warning: ...`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="model checkpoint (.safetensors); default: the embedded model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    _add_vocoder_choice(p)
    p.add_argument("--gender", default="auto", choices=["auto", "female", "male"],
                   help="gender head for the reference's style (default: estimated by the model)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-align", action="store_true", help="centre-crop faces instead of landmark alignment")


def _add_vocoder_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocoder", default="auto", choices=["auto", "neural", "griffin-lim"],
                   help="auto: the one the model's recipe measured best (default); neural: the model's own")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xfavot", description="Cross-modal face and voice style transfer (XFaVoT).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write an untrained model (for tests or training from scratch)")
    p.add_argument("--preset", default="small", choices=["small", "paper", "tiny"])
    p.add_argument("--speakers", type=int, help="number of speaker-identity domains (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = sub.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint", nargs="?", help="default: the embedded model")
    p.add_argument("--json", action="store_true")

    tasks = {
        "face-from-voice": ("a face that matches this voice (audio-guided face translation)", "IMG", "AUDIO", "PNG"),
        "face-from-face": ("reference-guided face translation", "IMG", "IMG", "PNG"),
        "voice-from-face": ("a voice that matches this face (image-guided voice conversion)", "AUDIO", "IMG", "WAV"),
        "voice-from-voice": ("one-shot voice conversion", "AUDIO", "AUDIO", "WAV"),
    }
    for name, (text, src, ref, out) in tasks.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--source", required=True, nargs="+", metavar=src,
                       help="one or more sources; with several, --out is a folder")
        p.add_argument("--reference", required=True, metavar=ref)
        p.add_argument("--out", required=True, metavar=out)
        _add_common(p)

    p = sub.add_parser("sample", help="latent-guided generation: a matching face and voice style from a domain")
    p.add_argument("--domain", required=True, help="female, male, or a speaker name of the model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--face", metavar="IMG")
    p.add_argument("--out-face", metavar="PNG")
    p.add_argument("--voice", metavar="AUDIO")
    p.add_argument("--out-voice", metavar="WAV")
    _add_common(p)

    p = sub.add_parser("export", help="batch export: every source face/voice against every reference, with a manifest")
    p.add_argument("--faces", nargs="+", default=[], metavar="DIR|IMG", help="source faces (folders or files)")
    p.add_argument("--voices", nargs="+", default=[], metavar="DIR|AUDIO", help="source voices (folders or files)")
    p.add_argument("--ref-voices", nargs="+", default=[], metavar="DIR|AUDIO", help="reference voices")
    p.add_argument("--ref-faces", nargs="+", default=[], metavar="DIR|IMG", help="reference faces")
    p.add_argument("--latents", type=int, default=0, metavar="N", help="N latent-sampled references")
    p.add_argument("--domains", default="female,male", help="domains the latent samples cycle through")
    p.add_argument("--seed", type=int, default=0, help="seed of the first latent sample (then +1, +2, ...)")
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="voice file format")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (re-running resumes it)")
    _add_common(p)

    p = sub.add_parser("eval", help="quality report of a model on a synthetic corpus's held-out speakers")
    p.add_argument("--checkpoint", help="model to evaluate (default: the embedded model)")
    p.add_argument("--corpus", required=True, help="synthetic corpus folder (its test speakers are used)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    _add_vocoder_choice(p)
    p.add_argument("--retrieval-speakers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)

    data = sub.add_parser("data", help="datasets: synthetic corpus, previews, attribute oracle")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = dsub.add_parser("synth", help="generate the synthetic paired face-voice corpus")
    p.add_argument("--speakers", type=int, required=True)
    p.add_argument("--utts", type=int, required=True, help="voice clips per speaker")
    p.add_argument("--faces", type=int, help="face renders per speaker (default: --utts)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", default="espeak,flite", help="comma list of espeak, flite, mbrola")
    p.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    p.add_argument("--kind-mix", default="0.5,0.25,0.25",
                   help="shares of paired, audio-only and image-only training speakers")
    p = dsub.add_parser("preview", help="contact sheet PNG of faces per speaker")
    p.add_argument("corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--speakers", type=int, default=24)
    p = dsub.add_parser("prepare-av", help="cache faces + 24 kHz audio from talking-face videos (GRID, LRS3, Lip2Wav)")
    p.add_argument("root", help="ROOT/<speaker>/<clip video or frame folder>")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--frames", type=int, default=3, help="face frames per clip")
    p.add_argument("--genders", help="CSV of speaker,gender (default: ROOT/genders.csv)")
    p.add_argument("--audio-root", help="separate audio tree ROOT_AUDIO/<speaker>/<clip>.wav (GRID)")
    p.add_argument("--device", default="cpu")
    p = dsub.add_parser("oracle", help="train or evaluate the face attribute oracle")
    p.add_argument("action", choices=["train", "eval"])
    p.add_argument("--out", help="train: where to write it (default: resources/oracle/)")
    p.add_argument("--oracle", help="eval: oracle file (default: the shipped one)")
    p.add_argument("--corpus", help="eval: score a synthetic corpus's faces against its speakers")
    p.add_argument("--identities", type=int, default=1500, help="train: rendered identities")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p = dsub.add_parser("info", help="summarise a dataset folder and list unreadable files")
    p.add_argument("layout", choices=["synthetic", "celeba-hq", "vctk", "prepared-av", "avatars"])
    p.add_argument("root")
    p.add_argument("--voices", help="avatars: optional voice folder")

    from training.cli import add_aux_arguments, add_finetune_arguments, add_train_arguments, add_vocoder_arguments

    add_train_arguments(sub.add_parser("train", help="train an XFaVoT model (see training/cli.py)"))
    add_finetune_arguments(sub.add_parser("finetune", help="adapt a model to a custom avatar set (image side)"))
    add_aux_arguments(sub.add_parser("train-aux", help="train the JDC F0 and content (ASR) networks on a corpus"))
    add_vocoder_arguments(sub.add_parser("train-vocoder", help="train a HiFiGAN / Parallel WaveGAN vocoder on our mels"))
    p = sub.add_parser("attach-vocoder", help="embed a trained vocoder in a model checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--vocoder", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("bench", help="inference benchmark table (see benchmarks/bench_inference.py)")
    p.add_argument("--presets", nargs="+", default=["small"], choices=["tiny", "small", "paper"])
    p.add_argument("--devices", nargs="+", default=["cpu"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="length of the benchmark voice clip")
    return parser


# ---------------------------------------------------------------------------------------------


def _outputs(sources: list[str], out: str, suffixes: tuple[str, ...], default_suffix: str) -> list[Path]:
    from core.errors import UserError

    out_path = Path(out)
    if len(sources) == 1 and out_path.suffix:
        if out_path.suffix.lower() not in suffixes:
            raise UserError(f"--out {out}: use one of {', '.join(suffixes)}")
        return [out_path]
    if out_path.suffix.lower() in suffixes:
        raise UserError(f"{len(sources)} sources were given: --out must be a folder, not {out}")
    return [out_path / (Path(s).stem + default_suffix) for s in sources]


def _engine(args):
    from core.engine import Engine

    engine = Engine(batch_size=args.batch_size, align_faces=not args.no_align)
    engine.load(args.checkpoint, args.device, args.vocoder)
    return engine


def _run_task(args) -> None:
    from tqdm import tqdm

    from core import audio

    engine = _engine(args)
    gender = None if args.gender == "auto" else args.gender
    makes_face = args.command.startswith("face")
    if args.command.endswith("from-voice"):
        style = engine.style_of_voice(args.reference, gender)
    else:
        style = engine.style_of_face(args.reference, gender)
    outs = _outputs(args.source, args.out, IMAGE_SUFFIXES if makes_face else (".wav", ".flac", ".ogg"),
                    ".png" if makes_face else ".wav")
    step = engine.batch_size if makes_face else 1
    with tqdm(total=len(args.source), unit="item", disable=len(args.source) == 1, file=sys.stderr) as bar:
        for i in range(0, len(args.source), step):
            chunk = args.source[i:i + step]
            if makes_face:
                for img, path in zip(engine.face_from_style(chunk, style), outs[i:i + step]):
                    _save_image(img, path)
            else:
                wav = engine.voice_from_style(chunk[0], style)
                audio.save_audio(outs[i], wav)
            bar.update(len(chunk))
    if len(outs) == 1:
        print(outs[0])
    else:
        print(f"wrote {len(outs)} files to {outs[0].parent}")


def _save_image(img, path: Path) -> None:
    from core.errors import UserError

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        img.save(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {path}: {exc}")


def _run_sample(args) -> None:
    from core import audio
    from core.errors import UserError

    if not (args.face or args.voice):
        raise UserError("give --face IMG (with --out-face) and/or --voice AUDIO (with --out-voice)")
    if bool(args.face) != bool(args.out_face) or bool(args.voice) != bool(args.out_voice):
        raise UserError("--face needs --out-face and --voice needs --out-voice")
    engine = _engine(args)
    style = engine.sample_style(args.domain, args.seed)
    if args.face:
        _save_image(engine.face_from_style(args.face, style), Path(args.out_face))
        print(args.out_face)
    if args.voice:
        audio.save_audio(args.out_voice, engine.voice_from_style(args.voice, style))
        print(args.out_voice)


def _run_export(args) -> None:
    from tqdm import tqdm

    from core.export import ExportPlan, run_export

    plan = ExportPlan.from_paths(args.faces, args.voices, args.ref_voices, args.ref_faces, latents=args.latents,
                                 latent_domains=[d for d in args.domains.split(",") if d], seed=args.seed,
                                 gender=None if args.gender == "auto" else args.gender, voice_format=args.format)
    engine = _engine(args)
    with tqdm(unit="item", file=sys.stderr) as bar:
        def progress(n, total, item):
            bar.total = total
            bar.n = n
            bar.refresh()
        summary = run_export(engine, plan, args.out, on_progress=progress)
    print(summary.text())
    for item_id, reason in summary.failed:
        print(f"failed {item_id}: {reason}", file=sys.stderr)
    return 1 if summary.failed else 0


def _run_eval(args) -> None:
    from core.engine import resolve_checkpoint
    from training.evaluate import evaluate, markdown

    report = evaluate(resolve_checkpoint(args.checkpoint), args.corpus, args.out, args.device,
                      args.retrieval_speakers, seed=args.seed, vocoder=args.vocoder)
    print(markdown(report))


def _run_init(args) -> None:
    import torch

    from core import checkpoint, config, model

    overrides = {}
    if args.speakers is not None:
        overrides["speakers"] = tuple(f"spk{i:03d}" for i in range(args.speakers))
    cfg = config.preset(args.preset, **overrides)
    torch.manual_seed(args.seed)
    nets = model.build_networks(cfg)
    checkpoint.save_model(args.out, nets, cfg, {"steps": 0, "trained": False, "seed": args.seed,
                                                "description": f"untrained {args.preset} model"})
    print(args.out)


def _run_info(args) -> None:
    from core import checkpoint, engine

    path = engine.resolve_checkpoint(args.checkpoint)
    header = checkpoint.read_header(path)
    if header.get("format") != checkpoint.FORMAT:
        from core.errors import UserError

        raise UserError(f"{path.name} is not an XFaVoT model checkpoint")
    cfg, meta = header["config"], header.get("meta", {})
    if args.json:
        print(json.dumps(header, indent=2))
        return
    vocoder = meta.get("vocoder") or {}
    speakers = cfg.get("speakers", [])
    rows = [
        ("file", str(path)),
        ("preset", cfg.get("preset")),
        ("description", meta.get("description", "")),
        ("domains", f"{len(cfg.get('genders', []))} genders ({', '.join(cfg.get('genders', []))}) + {len(speakers)} speakers"),
        ("speakers", ", ".join(speakers[:8]) + (" ..." if len(speakers) > 8 else "")),
        ("training steps", meta.get("steps", 0)),
        ("vocoder", vocoder.get("generator_type") or vocoder.get("path") or "Griffin-Lim (none embedded)"),
        ("mel front end", cfg.get("mel_frontend")),
        ("modules", ", ".join(header.get("modules", []))),
        ("created", meta.get("created", "")),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _run_bench(args) -> None:
    from core import bench

    bench.main(presets=args.presets, devices=args.devices, batch_sizes=args.batch_sizes,
               repeats=args.repeats, seconds=args.seconds)


def _run_data(args) -> None:
    from training.data import synth

    if args.data_command == "synth":
        engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
        unknown = set(engines) - {"espeak", "flite", "mbrola"}
        if unknown or not engines:
            from core.errors import UserError

            raise UserError(f"--engines takes espeak, flite and/or mbrola, not {args.engines!r}")
        try:
            mix = tuple(float(x) for x in args.kind_mix.split(","))
            assert len(mix) == 3 and min(mix) >= 0 and sum(mix) > 0
        except (ValueError, AssertionError):
            from core.errors import UserError

            raise UserError(f"--kind-mix takes three non-negative shares like 0.5,0.25,0.25, not {args.kind_mix!r}")
        opts = synth.SynthOptions(speakers=args.speakers, utts=args.utts, faces=args.faces or args.utts,
                                  seed=args.seed, engines=engines, kind_mix=tuple(m / sum(mix) for m in mix))
        manifest = synth.synthesize_corpus(args.out, opts, workers=args.workers)
        hours = sum(u["seconds"] for u in manifest["utterances"]) / 3600
        size = synth.corpus_size_bytes(args.out) / 2**20
        kinds = {k: sum(s["kind"] == k for s in manifest["speakers"]) for k in ("paired", "audio", "image")}
        print(f"{args.out}: {len(manifest['speakers'])} speakers ({kinds['paired']} paired, {kinds['audio']} "
              f"audio-only, {kinds['image']} image-only), {len(manifest['utterances'])} clips ({hours:.2f} h), "
              f"{len(manifest['faces'])} faces, {size:.0f} MiB, {manifest['elapsed_s']:.0f} s")
    elif args.data_command == "preview":
        print(synth.preview(args.corpus, args.out, max_speakers=args.speakers))
    elif args.data_command == "prepare-av":
        from training.data.audiovisual import prepare_audiovisual

        index = prepare_audiovisual(args.root, args.out, args.frames, args.genders, args.audio_root, args.device)
        print(f"{args.out}: {len(index['speakers'])} speakers, "
              f"{sum(len(s['voices']) for s in index['speakers'])} clips, {len(index['skipped'])} skipped")
        for path, why in index["skipped"]:
            print(f"  skipped {path}: {why}")
    elif args.data_command == "oracle":
        _run_oracle(args)
    elif args.data_command == "info":
        from training.data import datasets

        ds = (datasets.load_avatar_set(args.root, args.voices) if args.layout == "avatars"
              else datasets.LOADERS[args.layout](args.root))
        print(ds.summary())
        for path, why in ds.skipped:
            print(f"  skipped {path}: {why}")


def _run_oracle(args) -> None:
    from training import oracle

    if args.action == "train":
        acc = oracle.train_oracle(args.out or oracle.DEFAULT_ORACLE, train_identities=args.identities,
                                  epochs=args.epochs, seed=args.seed)
        print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        return
    from PIL import Image

    from core.errors import UserError
    from training.data.synth import load_manifest

    if not args.corpus:
        raise UserError("oracle eval needs --corpus DIR")
    model = oracle.load_oracle(args.oracle or oracle.DEFAULT_ORACLE)
    manifest = load_manifest(args.corpus)
    truth = oracle.ground_truth(manifest)
    faces = manifest["faces"]
    correct = {k: 0 for k in oracle.VOICE_LINKED}
    for i in range(0, len(faces), 256):
        chunk = faces[i:i + 256]
        preds = oracle.predict(model, [Image.open(Path(args.corpus) / f["path"]) for f in chunk])
        for f, p in zip(chunk, preds):
            for k in correct:
                correct[k] += p[k] == truth[f["speaker"]][k]
    print(f"{len(faces)} faces: " + ", ".join(f"{k} {v / max(len(faces), 1):.3f}" for k, v in correct.items()))


def _run_train(args) -> None:
    from training.cli import run_train

    run_train(args)


def _run_finetune(args) -> None:
    from training.cli import run_finetune_cli

    run_finetune_cli(args)


def _run_train_aux(args) -> None:
    from training.cli import run_train_aux

    run_train_aux(args)


def _run_train_vocoder(args) -> None:
    from training.cli import run_train_vocoder

    run_train_vocoder(args)


def _run_attach_vocoder(args) -> None:
    from training.vocoder import attach_vocoder

    attach_vocoder(args.checkpoint, args.vocoder, args.out)
    print(args.out)


COMMANDS = {"train": _run_train, "finetune": _run_finetune, "train-aux": _run_train_aux, "train-vocoder": _run_train_vocoder,
            "attach-vocoder": _run_attach_vocoder, "init": _run_init, "info": _run_info, "sample": _run_sample, "export": _run_export, "eval": _run_eval, "bench": _run_bench, "data": _run_data}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    from core.errors import UserError

    try:
        status = COMMANDS.get(args.command, _run_task)(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
