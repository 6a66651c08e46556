"""`python -m loader …` = `pulse load …` without importing every other area's CLI."""

import argparse
import sys

from loader.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loader")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["load", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
