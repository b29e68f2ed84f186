"""Pausing Python's cyclic garbage collector while many acyclic objects are made.

Making a list per row of a column (a hundred thousand of them in a chunk) sets off a
collection every 700 new containers, and the older generations' collections walk every
container alive, the chunks' lists included: measured, that doubled the cost of turning a
column of ranked lists into Python lists and of validating them. A list of strings can
hold no reference cycle, so a collection during that work finds nothing to free: pausing
it loses nothing, and the collection after walks the new lists once. Reference counting
frees memory as always; only the cycle detector waits.

>>> import gc
>>> with paused_collection():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_collection() -> Iterator[None]:
    """No cyclic collection inside; the collector as it was (on, or off) after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
