"""How ua-autotag gets into interpreters it does not start itself.

* :data:`DIRECTORY`, the folder ``ua-autotag run`` puts first on ``PYTHONPATH``. It
  holds one module, ``sitecustomize.py``, which Python imports at the start of every
  interpreter that sees the folder on its path. Nothing else in here may be importable
  as a top-level module, so keep this package to those two files.
* The opt-in ``.pth`` activation, for images whose entrypoint cannot change:
  ``ua-autotag install-pth`` writes :data:`FILENAME` into a site directory. Python's
  ``site`` module executes its ``import`` line at every interpreter start; the line
  looks at three environment variables and stops there unless one is set, so the cost
  without configuration is a few dictionary lookups (``os`` is already imported by
  ``site``). With one set it runs ``import ua_autotag``, which instruments from the
  environment; a failure is one line on stderr, never a failed interpreter start.
  Never installed implicitly: only by the command. The name sorts after
  ``__editable__*`` / ``_editable_impl_*`` path files, so an editable install's source
  folder is already on ``sys.path`` when the line runs.

No ``typing`` or ``contextlib`` at import: the launcher imports this on every ``run``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = [
    "DIRECTORY",
    "FILENAME",
    "MARKER",
    "default_target",
    "install",
    "installed",
    "problem",
    "pth_text",
    "uninstall",
]

#: absolute path of this package's folder (the entry the launcher adds to PYTHONPATH)
DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def problem() -> Optional[str]:
    """Why :data:`DIRECTORY` may not go on a child's ``PYTHONPATH``, or None.

    Every Python child imports what it holds first, so it, its ``sitecustomize.py`` and
    its ``__pycache__`` (where a planted ``.pyc`` would run instead) must sit where only
    you or root can write (:mod:`ua_autotag.runtimes.trust`).
    """
    from ..runtimes import trust

    cache = os.path.join(DIRECTORY, "__pycache__")
    return (
        trust.verdict(DIRECTORY, "dir")
        or trust.verdict(os.path.join(DIRECTORY, "sitecustomize.py"))
        or (trust.verdict(cache, "dir") if os.path.lexists(cache) else None)
    )


FILENAME = "ua_autotag-activate.pth"
MARKER = "# ua-autotag: opt-in activation written by `ua-autotag install-pth`"

#: run only when configured; a failure is reported in one line and swallowed
_ACTIVATE = (
    "try:\n"
    " import ua_autotag\n"
    "except Exception as e:\n"
    " import sys\n"
    " sys.stderr.write('ua-autotag: .pth activation failed: %s: %s\\n' % "
    "(type(e).__name__, e))\n"
)


def pth_text() -> str:
    """The file's content: a comment and one ``import`` line (site executes those)."""
    from ..settings import VALUE_VARS  # what settings.has_user_agent looks at

    condition = " or ".join(f"os.environ.get({var!r})" for var in VALUE_VARS)
    line = f"import os; exec({_ACTIVATE!r}) if ({condition}) else None"
    assert "\n" not in line
    return (
        f"{MARKER}; remove with `ua-autotag uninstall-pth`.\n"
        "# Runs `import ua_autotag` at interpreter start only when UA_AUTOTAG_USER_AGENT "
        "(or UA_AUTOTAG_ISV / UA_AUTOTAG_PRODUCT) is set.\n"
        f"{line}\n"
    )


def default_target() -> str:
    """This interpreter's site-packages (the virtualenv's, inside one)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def install(target: Optional[str] = None) -> str:
    """Write the .pth into ``target`` (default :func:`default_target`); return its path."""
    directory = os.path.abspath(target or default_target())
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, FILENAME)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(pth_text())
    os.replace(tmp, path)  # atomic: a starting interpreter never reads half a file
    return path


def uninstall(target: Optional[str] = None) -> Optional[str]:
    """Remove our .pth from ``target``; return its path, or None if there was none.

    Raises ValueError if a file of that name is there but was not written by us.
    """
    path = os.path.join(os.path.abspath(target or default_target()), FILENAME)
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return None
    if not first.startswith(MARKER):
        raise ValueError(f"{path} was not written by ua-autotag install-pth; left alone")
    os.remove(path)
    return path


def installed() -> list[str]:
    """Paths of our .pth in this interpreter's site directories."""
    import site
    import sys

    dirs = {default_target()}
    try:  # noqa: SIM105 - no contextlib on the launcher's path
        dirs.update(site.getsitepackages())
    except AttributeError:  # old virtualenv's site.py
        pass
    user_site = getattr(site, "ENABLE_USER_SITE", False) and site.getusersitepackages()
    if user_site:
        dirs.add(user_site)
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    found = []
    for directory in sorted(dirs):
        path = os.path.join(directory, FILENAME)
        if os.path.exists(path):
            found.append(path)
    return found
