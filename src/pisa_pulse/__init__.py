"""PISA Pulse: simulator -> loader -> dbt -> Datasette, in packages by stage.

Layers, top to bottom (an import-linter contract in pyproject.toml keeps them): `cli`
(the `pulse` command), `bench`, `ops` (the supervisor of `pulse up`), `realtime` (the loop),
`serving` and `indices`, `loader` and `sim`, `core`. A package imports only from below.
See docs/architecture.md.
"""
