"""Benchmarks: `pulse bench <name>`; each module here with add_arguments(p) and run(args)."""
