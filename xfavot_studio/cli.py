"""`xfavot`: the command line. This module only assembles the parser from the three command
groups and dispatches; the handlers live with their group:

    cli_inference.py   init, info, face-from-voice / face-from-face / voice-from-face /
                       voice-from-voice, sample, live, export, bench
    cli_training.py    train, finetune, train-aux, train-vocoder, attach-vocoder, eval
    cli_data.py        data synth | real | preview | prepare-av | oracle | info

A problem a user can fix prints one line `error: ...` and exits with status 2 (--debug: the
traceback instead).
"""
from __future__ import annotations

import argparse
import logging
import sys

from . import cli_data, cli_inference, cli_training

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xfavot", description="Cross-modal face and voice style transfer (XFaVoT).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (cli_inference, cli_training, cli_data):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    from core.errors import UserError

    try:
        status = args.handler(args)
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
