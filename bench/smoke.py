"""The smoke mode every benchmark has: `--smoke` runs it on a tiny input in seconds, through
the same code and the same native comparison, so that the suite (tests/test_bench.py) shows
it still runs and prints its JSON line. Its figures mean nothing; full runs give them."""

from __future__ import annotations

import argparse


def parse_arguments(parser: argparse.ArgumentParser, **smoke: object) -> argparse.Namespace:
    """The command line's arguments; with `--smoke`, the values in `smoke` (by destination
    name, e.g. `detect_calls` for `--detect-calls`) replace what was given or defaulted."""
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that shows the bench works (figures moot)"
    )
    arguments = parser.parse_args()
    unknown = sorted(set(smoke) - set(vars(arguments)))
    if unknown:  # a smoke value for an option the bench no longer has
        raise ValueError(f"smoke values for unknown options: {', '.join(unknown)}")
    if arguments.smoke:
        for name, value in smoke.items():
            setattr(arguments, name, value)
    return arguments
