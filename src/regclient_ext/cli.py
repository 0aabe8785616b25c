"""Command line interface: print an image's config or its digests and platforms as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._default import get_image_config, inspect_image
from ._host import TLS_MODES
from ._version import __version__
from .errors import (
    AuthenticationError,
    InvalidPlatformError,
    InvalidReferenceError,
    NotFoundError,
    RateLimitError,
    RegclientError,
    RegistryConnectionError,
    RegistryTimeoutError,
    UnsupportedMediaTypeError,
)

PASSWORD_VARIABLE = "REGCLIENT_EXT_PASSWORD"

# Exit codes by error class, first match wins. 2 is argparse's usage error.
EXIT_CODES: list[tuple[tuple[type[BaseException], ...], int]] = [
    ((NotFoundError,), 3),
    ((AuthenticationError,), 4),
    ((InvalidReferenceError, InvalidPlatformError, ValueError, TypeError), 5),
    ((UnsupportedMediaTypeError,), 6),
    ((RegistryConnectionError, RegistryTimeoutError, RateLimitError), 7),
    ((RegclientError,), 1),
]

EXAMPLES = f"""\
examples:
  regclient-ext config ocidir://tests/data/regclient-testrepo:v1
  regclient-ext config --platform linux/arm64 registry.example.com/app:1.0
  regclient-ext inspect --tls disabled 127.0.0.1:5000/app:1.0
  echo "$TOKEN" | regclient-ext config --username deploy --password-stdin registry.example.com/app:1.0

The password comes from --password-stdin or the {PASSWORD_VARIABLE} environment
variable, never from the command line, where other users could read it.

exit codes:
  0 success          3 not found (image, tag or platform)   6 not a container image
  1 other error      4 authentication failed                7 connection, timeout or rate limit
  2 usage error      5 invalid reference, platform or option
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
    for name, help_text in (("config", "print the image config JSON"), ("inspect", "print digests, media type, platforms and config")):
        command = commands.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument("image", help="image reference, such as registry.example.com/app:1.0 or ocidir://PATH:TAG")
        command.add_argument("--platform", help='platform as "os/arch[/variant]" (default: this machine\'s)')
        command.add_argument("--tls", choices=TLS_MODES, help="TLS mode for the image's registry: enabled (default), disabled (plain HTTP) or insecure (no certificate check)")
        command.add_argument("--username", help="user name for the image's registry")
        command.add_argument("--password-stdin", action="store_true", help=f"read the password from standard input (else from ${PASSWORD_VARIABLE})")
        command.add_argument("--timeout", type=float, default=30.0, help="timeout for the whole call, in seconds (default: 30)")
        command.add_argument("--compact", action="store_true", help="print JSON on one line instead of indented")
    return parser


def read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return os.environ.get(PASSWORD_VARIABLE)


def exit_code(error: BaseException) -> int:
    for classes, code in EXIT_CODES:
        if isinstance(error, classes):
            return code
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.password_stdin and args.username is None:
        print("regclient-ext: error: --password-stdin needs --username", file=sys.stderr)
        return 2
    if args.platform == "":
        print("regclient-ext: error: --platform is empty: leave it out for this machine's platform, or give os/arch[/variant]", file=sys.stderr)
        return 5
    password = read_password(args)
    if args.username is None and password:
        print(f"regclient-ext: warning: ${PASSWORD_VARIABLE} is set but --username is not, so the password is not used", file=sys.stderr)
    if args.username is not None and not password:
        print(f"regclient-ext: error: --username needs a password from --password-stdin or ${PASSWORD_VARIABLE}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"platform": args.platform, "tls": args.tls, "timeout": args.timeout}
    if args.username is not None:
        options.update(username=args.username, password=password)

    try:
        if args.command == "config":
            output: Any = get_image_config(args.image, **options)
        else:
            output = dataclasses.asdict(inspect_image(args.image, **options))
    except (RegclientError, ValueError, TypeError) as error:
        print(f"regclient-ext: error: {error}", file=sys.stderr)
        return exit_code(error)

    try:
        if args.compact:
            json.dump(output, sys.stdout, separators=(",", ":"))
        else:
            json.dump(output, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away, as with `| head`, so print nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
