"""`xfavot` inference commands: init, info, the four tasks, sample, live, export, bench.

Thin handlers over core (the Engine, checkpoint records, batch export, streaming); the parser
module (xfavot_studio/cli.py) only puts the groups together.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.config import DEVICE_CHOICES, GENDERS, PRESET_NAMES, VOCODER_CHOICES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
TASKS = {
    "face-from-voice": ("a face that matches this voice (audio-guided face translation)", "IMG", "AUDIO", "PNG"),
    "face-from-face": ("reference-guided face translation", "IMG", "IMG", "PNG"),
    "voice-from-face": ("a voice that matches this face (image-guided voice conversion)", "AUDIO", "IMG", "WAV"),
    "voice-from-voice": ("one-shot voice conversion", "AUDIO", "AUDIO", "WAV"),
}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="model checkpoint (.safetensors); default: the embedded model")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    _add_vocoder_choice(p)
    p.add_argument("--gender", default="auto", choices=("auto",) + GENDERS,
                   help="gender head for the reference's style (default: estimated by the model)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-align", action="store_true", help="centre-crop faces instead of landmark alignment")


def _add_vocoder_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocoder", default="auto", choices=VOCODER_CHOICES,
                   help="auto: the one the model's recipe measured best (default); neural: the model's own")


def add_commands(sub) -> None:
    p = sub.add_parser("init", help="write an untrained model (for tests or training from scratch)")
    p.add_argument("--preset", default="cpu", choices=PRESET_NAMES)
    p.add_argument("--speakers", type=int, help="number of speaker-identity domains (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = sub.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint", nargs="?", help="default: the embedded model")
    p.add_argument("--json", action="store_true")

    for name, (text, src, ref, out) in TASKS.items():
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

    p = sub.add_parser("live", help="live voice conversion: microphone (or a file) in, the reference's voice out")
    p.add_argument("--reference", required=True, metavar="IMG|AUDIO|latent:DOMAIN:SEED",
                   help="an avatar face, a voice, or a latent sample such as latent:female:3")
    p.add_argument("--input-device", help="input device index or name (default: the system's)")
    p.add_argument("--output-device", help="output device index or name, e.g. a virtual cable for OBS or calls")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--block-ms", type=float, default=100.0, help="block length (multiples of 50 ms)")
    p.add_argument("--context-ms", type=float, default=2000.0, help="audio before each block the model sees")
    p.add_argument("--lookahead-ms", type=float, default=0.0, help="audio after each block the model waits for")
    p.add_argument("--transpose", default="auto", type=_transpose_arg,
                   help="semitones the pitch the model follows moves by (0: off), or auto: to the "
                   "reference's register, from the first 1.5 s of voiced input (default)")
    p.add_argument("--seconds", type=float, help="microphone mode: stop after this long (default: Ctrl+C)")
    p.add_argument("--input-file", metavar="AUDIO", help="file mode: play this file through the live path")
    p.add_argument("--output-file", metavar="WAV", help="file mode: what the output device would have played")
    p.add_argument("--speed", type=float, default=1.0, help="file mode: pace (1 = real time)")
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

    p = sub.add_parser("bench", help="inference benchmark table (see benchmarks/bench_inference.py)")
    p.add_argument("--presets", nargs="+", default=["cpu"], choices=PRESET_NAMES)
    p.add_argument("--devices", nargs="+", default=["cpu"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="length of the benchmark voice clip")
    handlers = {"init": run_init, "info": run_info, "sample": run_sample, "live": run_live, "export": run_export,
                "bench": run_bench, "face-from-voice": run_task, "face-from-face": run_task,
                "voice-from-face": run_task, "voice-from-voice": run_task}
    for name, handler in handlers.items():
        sub.choices[name].set_defaults(handler=handler)



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


def run_task(args) -> None:
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


def run_sample(args) -> None:
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


def _style_from_reference(engine, reference: str, gender: str | None):
    """An avatar/face image, a voice file, or latent:DOMAIN:SEED -> a Style."""
    from core.errors import UserError

    if reference.startswith("latent:"):
        parts = reference.split(":")
        if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
            raise UserError(f"a latent reference is latent:DOMAIN:SEED (e.g. latent:female:3), not {reference!r}")
        return engine.sample_style(parts[1], int(parts[2]))
    if Path(reference).suffix.lower() in IMAGE_SUFFIXES:
        return engine.style_of_face(reference, gender)
    return engine.style_of_voice(reference, gender)


def _transpose_arg(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: use auto, or whole semitones such as -5 or 7")


def _device_arg(value: str | None):
    return int(value) if value is not None and value.isdigit() else value


def run_live(args) -> int:
    from core import audio
    from core.errors import UserError
    from core.streaming import StreamingConverter

    from . import live

    if args.list_devices:
        from .audio_io import _sd, unavailable_reason

        sd = _sd()
        print(sd.query_devices() if sd is not None else unavailable_reason("input"))
        return 0
    if bool(args.input_file) != bool(args.output_file):
        raise UserError("file mode takes both --input-file and --output-file")
    engine = _engine(args)
    style = _style_from_reference(engine, args.reference, None if args.gender == "auto" else args.gender)
    try:
        converter = StreamingConverter(engine, style, args.block_ms, args.context_ms, args.lookahead_ms,
                                       transpose=args.transpose)
    except ValueError as exc:
        raise UserError(str(exc))
    if args.input_file:
        samples = engine.read_voice(args.input_file)
        out, stats = live.run_file(converter, samples, audio.SAMPLE_RATE, speed=args.speed)
        audio.save_audio(args.output_file, out)
        print(stats.summary())
        print(converter.pitch_summary())
        print(args.output_file)
        return 0
    errors: list[str] = []
    session = live.LiveSession(converter, _device_arg(args.input_device), _device_arg(args.output_device),
                               on_error=errors.append)
    try:
        session.start()
    except RuntimeError as exc:
        raise UserError(str(exc))
    print("live: speak now (Ctrl+C to stop)", file=sys.stderr)
    started = time.monotonic()
    try:
        while session.running and (args.seconds is None or time.monotonic() - started < args.seconds):
            time.sleep(1.0)
            print(f"\r{session.stats.summary()}   ", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        session.stop()
        print(file=sys.stderr)
    if errors:
        raise UserError(errors[0])
    print(session.stats.summary())
    return 0


def run_export(args) -> None:
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


def run_init(args) -> None:
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


def run_info(args) -> None:
    import json

    from core import checkpoint, engine

    path = engine.resolve_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(checkpoint.require_model(checkpoint.read_header(path), path), indent=2))
        return
    rows = checkpoint.describe(path).card()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def run_bench(args) -> None:
    from core import bench

    bench.main(presets=args.presets, devices=args.devices, batch_sizes=args.batch_sizes,
               repeats=args.repeats, seconds=args.seconds)
