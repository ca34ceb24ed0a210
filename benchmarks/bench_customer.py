"""Customer code for the attribution benchmark: a module that is no product's.

``at_depth(n, fn)`` calls ``fn`` from the bottom of ``n`` fresh frames of this module
(recursion), so every connect or request of the benchmark walks a 40-frame stack of
customer code before reaching the harness.
"""

from __future__ import annotations

from typing import Any, Callable


def at_depth(n: int, fn: Callable[[], Any]) -> Any:
    if n:
        return at_depth(n - 1, fn)
    return fn()
