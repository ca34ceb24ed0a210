"""A library product for the attribution benchmark (registered with ``packages=[__name__]``).

``make(factory)`` builds an object from this module's code, so the engine pins it to
this product (engines, pools, SDK and REST clients remember the product that created
them); ``call(fn)`` runs ``fn`` from this module's code.
"""

from __future__ import annotations

from typing import Any, Callable


def make(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return factory(*args, **kwargs)


def call(fn: Callable[[], Any]) -> Any:
    return fn()
