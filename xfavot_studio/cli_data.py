"""`xfavot data ...`: the synthetic corpus, real speech, previews, audio-visual preparation, the
attribute oracle and dataset checks. Thin handlers over training/data and training/oracle.py."""
from __future__ import annotations

from training.data.identity import DEFAULT_ENGINES, ENGINES


def add_commands(sub) -> None:
    data = sub.add_parser("data", help="datasets: synthetic corpus, previews, attribute oracle")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = dsub.add_parser("synth", help="generate the synthetic paired face-voice corpus")
    p.add_argument("--speakers", type=int, required=True)
    p.add_argument("--utts", type=int, required=True, help="voice clips per speaker")
    p.add_argument("--faces", type=int, help="face renders per speaker (default: --utts)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                   help=f"comma list of speech engines ({', '.join(ENGINES)}; default %(default)s)")
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
    p = dsub.add_parser("real", help="real recorded speech from Debian packages, as audio-only speakers")
    p.add_argument("--out", help="folder to write (resumable)")
    p.add_argument("--list", action="store_true", help="list the sources, their packages and licences")
    p = dsub.add_parser("oracle", help="train or evaluate the face attribute oracle")
    p.add_argument("action", choices=["train", "eval"])
    p.add_argument("--out", help="train: where to write it (default: resources/oracle/)")
    p.add_argument("--oracle", help="eval: oracle file (default: the shipped one)")
    p.add_argument("--corpus", help="eval: score a synthetic corpus's faces against its speakers")
    p.add_argument("--identities", type=int, default=1500, help="train: rendered identities")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p = dsub.add_parser("info", help="summarise a dataset folder and list unreadable files")
    p.add_argument("layout", choices=["synthetic", "celeba-hq", "vctk", "prepared-av", "real-speech", "avatars"])
    p.add_argument("root")
    p.add_argument("--voices", help="avatars: optional voice folder")

    handlers = {"data": run_data}
    for name, handler in handlers.items():
        sub.choices[name].set_defaults(handler=handler)



def run_data(args) -> None:
    from training.data import synth

    if args.data_command == "synth":
        engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
        unknown = set(engines) - set(ENGINES)
        if unknown or not engines:
            from core.errors import UserError

            raise UserError(f"--engines takes a comma list of {', '.join(ENGINES)}, not {args.engines!r}")
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
    elif args.data_command == "real":
        run_real_speech(args)
    elif args.data_command == "oracle":
        run_oracle(args)
    elif args.data_command == "info":
        from training.data import datasets

        ds = (datasets.load_avatar_set(args.root, args.voices) if args.layout == "avatars"
              else datasets.LOADERS[args.layout](args.root))
        print(ds.summary())
        for path, why in ds.skipped:
            print(f"  skipped {path}: {why}")


def run_real_speech(args) -> None:
    from training.data import real_speech

    if args.list or not args.out:
        found = real_speech.discover()
        for source in real_speech.SOURCES:
            speakers = sorted({sid for sid, e in found.items() if source in e["sources"]})
            print(f"{source.package:<28} {source.licence:<26} {source.language:<6} "
                  f"{'installed, ' + str(len(speakers)) + ' speakers' if speakers else 'not installed'}")
        if not args.out:
            print("install with: sudo apt-get install " + " ".join(sorted({s.package for s in real_speech.SOURCES})))
        return
    manifest = real_speech.prepare_real_speech(args.out)
    print(f"{'package':<28} {'licence':<26} {'speakers':>8} {'female':>6} {'male':>5} {'test':>5} {'hours':>6}")
    for row in real_speech.summary_table(manifest):
        print(f"{row['package']:<28} {row['licence']:<26} {row['speakers']:>8} {row['female']:>6} {row['male']:>5} "
              f"{row['test']:>5} {row['hours']:>6.2f}")


def run_oracle(args) -> None:
    from training import oracle

    if args.action == "train":
        acc = oracle.train_oracle(args.out or oracle.DEFAULT_ORACLE, train_identities=args.identities,
                                  epochs=args.epochs, seed=args.seed)
        print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        return
    from core.errors import UserError

    if not args.corpus:
        raise UserError("oracle eval needs --corpus DIR")
    scores = oracle.corpus_accuracy(oracle.load_oracle(args.oracle or oracle.DEFAULT_ORACLE), args.corpus)
    faces = scores.pop("faces")
    print(f"{faces} faces: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
