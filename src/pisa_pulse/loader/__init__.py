"""The loader: every application-database row copied into `raw.responses` exactly once.

`Loader(settings).tick()` loads whatever is new from every source once; `pulse load` runs
ticks forever. See docs/loader.md for how change detection stays exact.
"""

from pisa_pulse.loader.engine import Loader, TickResult

__all__ = ["Loader", "TickResult"]
