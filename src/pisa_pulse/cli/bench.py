"""`pulse bench <name>`: benchmarks discovered from the modules of this package.

A benchmark module defines HELP (one line), add_arguments(parser) and run(args) -> int.
Results are printed as a table and written as JSON under docs/bench/.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import pisa_pulse.bench


def _modules() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(pisa_pulse.bench.__path__):
        if info.name.startswith("_") or info.name in ("cli", "common"):
            continue
        module = importlib.import_module(f"pisa_pulse.bench.{info.name}")
        if hasattr(module, "run"):
            found[info.name] = module
    return found


def cmd_all(args: argparse.Namespace) -> int:
    status = 0
    for name, module in _modules().items():
        if getattr(module, "IN_ALL", True):
            print(f"== pulse bench {name}")
            sub = argparse.ArgumentParser()
            module.add_arguments(sub)
            status |= module.run(sub.parse_args([]))
    return status


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (figures go to the README)")
    names = bench.add_subparsers(dest="bench_command", required=True)
    names.add_parser("all", help="every benchmark with its defaults").set_defaults(func=cmd_all)
    for name, module in _modules().items():
        p = names.add_parser(name, help=getattr(module, "HELP", None))
        module.add_arguments(p)
        p.set_defaults(func=module.run)
