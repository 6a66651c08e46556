"""Progress bars (tqdm) for long CLI work: on stderr, and only when asked for.

A bar is drawn when stderr is a terminal, or with `--progress`; `--no-progress` turns it
off. The supervisor's and `pulse run`'s jobs write stderr to log files (not a TTY), so their
logs stay free of carriage-return noise. Bars appear after a second (`delay`): quick runs
print nothing extra (unless `--progress` is given).
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

DELAY_S = 1.0


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar with rate and ETA on stderr (default: only when stderr is a terminal)",
    )


def enabled(flag: bool | None, stream=None) -> bool:
    """`--progress`/`--no-progress` if given, otherwise whether `stream` (stderr) is a TTY."""
    if flag is not None:
        return flag
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bar(flag: bool | None, **kwargs) -> tqdm:
    """A tqdm bar on stderr for `--progress`'s value `flag` (a no-op when not enabled).

    Asked for explicitly, it is drawn at once; on a terminal by default, after `DELAY_S`."""
    kwargs.setdefault("delay", 0 if flag else DELAY_S)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(file=sys.stderr, disable=not enabled(flag), **kwargs)
