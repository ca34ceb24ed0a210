"""Imported at interpreter start by every Python process ``ua-autotag run`` launches.

1. ``import ua_autotag``: the package instruments itself from the ``UA_AUTOTAG_*``
   variables the launcher exported (see ``ua_autotag._activate_from_env``).
2. Chain to the ``sitecustomize`` this one shadows (a virtualenv's, a distro's, the
   application's), as if ua-autotag were not there: take our folder off ``sys.path``,
   import ``sitecustomize`` again, put our folder back.

It must never stop the interpreter from starting: every failure becomes one line on
stderr and the program runs untagged. An exception raised by the *chained*
sitecustomize is the other module's, and Python reports it the way it always does.
"""

import os
import sys


def _warn(what: str, exc: BaseException) -> None:
    try:  # noqa: SIM105  (no contextlib import at interpreter start)
        sys.stderr.write(f"ua-autotag: {what}: {type(exc).__name__}: {exc}\n")
    except Exception:  # a closed stderr must not matter either
        pass


def _instrument() -> None:
    try:
        import ua_autotag  # noqa: F401  (instruments from the environment at import)
    except ImportError as exc:
        # This interpreter cannot see ua_autotag (another Python than the one that
        # ran the launcher): say so once, and run the program untagged.
        _warn("not instrumenting this interpreter (ua_autotag not importable)", exc)
    except Exception as exc:  # UA_AUTOTAG_STRICT with a bad value, or a bug of ours
        _warn("not instrumenting", exc)


def _chain() -> None:
    """Import the next ``sitecustomize`` on ``sys.path``, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    ours = sys.modules.get("sitecustomize")
    # every entry that resolves to this folder (the launcher puts it first; a nested
    # launch or a user PYTHONPATH may repeat it, possibly spelled differently)
    removed = [(i, p) for i, p in enumerate(sys.path) if _resolve(p) == here]
    for index, _ in reversed(removed):
        del sys.path[index]
    sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) != "sitecustomize":
            raise  # their sitecustomize failed on one of its own imports: theirs to report
    finally:
        # keep the real one in sys.modules if it ran; otherwise put ours back
        if "sitecustomize" not in sys.modules and ours is not None:
            sys.modules["sitecustomize"] = ours
        if ours is not None:
            sys.modules.setdefault("ua_autotag.bootstrap.sitecustomize", ours)
        # our entries go back where they were (the path stays introspectable and
        # child processes inherit PYTHONPATH anyway); changes the chained module
        # made to sys.path are kept
        for index, path in removed:
            sys.path.insert(index, path)


def _resolve(path: str) -> str:
    try:
        return os.path.abspath(path or os.curdir)
    except Exception:
        return path


_instrument()
_chain()
