"""Command line interface: ``regclient-ext config IMAGE`` prints an image config as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ._default import get_image_config
from ._host import TLS_MODES
from ._version import __version__
from .errors import RegclientError

EXAMPLES = """\
examples:
  regclient-ext config ocidir://tests/data/regclient-testrepo:v1
  regclient-ext config --platform linux/arm64 registry.example.com/app:1.0
  regclient-ext config --tls disabled 127.0.0.1:5000/app:1.0
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regclient-ext",
        description="Read container image configs from registries and OCI layouts.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser(
        "config",
        help="print the image config JSON",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_argument("image", help="image reference, such as registry.example.com/app:1.0 or ocidir://PATH:TAG")
    config.add_argument("--platform", help='platform as "os/arch[/variant]" (default: this machine\'s)')
    config.add_argument("--tls", choices=TLS_MODES, help="TLS mode for the image's registry")
    config.add_argument("--timeout", type=float, default=30.0, help="timeout for the whole call, in seconds (default: 30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = get_image_config(args.image, platform=args.platform, tls=args.tls, timeout=args.timeout)
    except (RegclientError, ValueError, TypeError) as error:
        print(f"regclient-ext: error: {error}", file=sys.stderr)
        return 1
    try:
        json.dump(config, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (as with `| head`); say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
