"""Import watching: call a hook right after a watched module has executed.

A :data:`sys.meta_path` finder of our own (the post-import-hook technique of wrapt and
ddtrace's ModuleWatchdog, written small): for a watched name it asks the finders after
it for the real spec and wraps that spec's loader, whose ``exec_module`` runs the
original and then the hooks. It only ever answers for watched names, so every other
import pays one set lookup. Hooks also run when the module is already imported at
:func:`watch` time, and again when the module is re-executed (``importlib.reload``):
they must be idempotent. A hook's exception never reaches the importer.

Standard library only, imported by ``instrument()`` before any client.
"""

from __future__ import annotations

import sys
from _thread import RLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Dict, List, Optional, Sequence

    Hook = Callable[[ModuleType], None]

__all__ = ["Finder", "initializing", "unwatch_all", "watch", "watched"]

_LOCK = RLock()
_HOOKS: Dict[str, List[Hook]] = {}


def _run_hooks(name: str, module: Any) -> None:
    for hook in list(_HOOKS.get(name, ())):
        try:  # noqa: SIM105 - no contextlib import on the import path
            hook(module)
        except Exception:  # a hook must never fail the application's import
            pass


class _Loader:
    """Delegates to the real loader; runs the hooks once the module has executed."""

    def __init__(self, loader: Any, name: str) -> None:
        self._ua_autotag_loader = loader
        self._ua_autotag_name = name

    def __getattr__(self, attribute: str) -> Any:  # get_resource_reader, is_package...
        return getattr(self._ua_autotag_loader, attribute)

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._ua_autotag_loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: Any) -> None:
        loader = self._ua_autotag_loader
        # the module keeps the real loader (introspection, reload, resources)
        try:
            module.__loader__ = loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = loader
        except Exception:
            pass
        loader.exec_module(module)
        _run_hooks(self._ua_autotag_name, sys.modules.get(self._ua_autotag_name, module))


class Finder:
    """The meta path finder: answers only for watched modules, and only to wrap the loader."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]] = None, target: Any = None
    ) -> Any:
        if fullname not in _HOOKS or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or isinstance(finder, Finder):
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # namespace package or legacy loader: the hook runs on the next check
        if not isinstance(spec.loader, _Loader):
            spec.loader = _Loader(spec.loader, fullname)
        return spec


_FINDER: Optional[Finder] = None


def _install() -> None:
    global _FINDER
    if _FINDER is None:
        _FINDER = Finder()
    if not any(f is _FINDER for f in sys.meta_path):
        sys.meta_path.insert(0, _FINDER)


def initializing(module: Any) -> bool:
    """Whether ``module`` is still executing (``sys.modules`` holds it mid-import)."""
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def watch(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` after ``name`` is imported (now, if it already is).

    A module another thread is still executing is waited for (by importing it, which
    blocks on its import lock) outside our lock, then hooked.
    """
    with _LOCK:
        _install()
        hooks = _HOOKS.setdefault(name, [])
        if hook not in hooks:
            hooks.append(hook)
        module = sys.modules.get(name)
    if module is None:
        return
    if initializing(module):
        import importlib

        try:
            module = importlib.import_module(name)  # waits for the other thread's import
        except Exception:
            return  # its import failed: nothing to patch
        if not getattr(module, "__spec__", None) or initializing(module):
            return  # imported by this very thread, mid-way: our loader runs the hook
    try:  # noqa: SIM105 - contextlib costs ~2 ms at import (collections, functools)
        hook(module)
    except Exception:
        pass


def watched() -> List[str]:
    """The module names being watched."""
    with _LOCK:
        return sorted(_HOOKS)


def unwatch_all() -> None:
    """Forget every hook and take the finder off ``sys.meta_path``."""
    global _FINDER
    with _LOCK:
        _HOOKS.clear()
        if _FINDER is not None:
            sys.meta_path[:] = [f for f in sys.meta_path if f is not _FINDER]
