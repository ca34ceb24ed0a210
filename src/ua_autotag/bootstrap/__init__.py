"""The directory ``ua-autotag run`` puts first on ``PYTHONPATH``.

It holds one module, ``sitecustomize.py``, which Python imports at the start of
every interpreter that sees the directory on its path. Nothing else in here may be
importable as a top-level module, so keep this package to those two files.
"""

from __future__ import annotations

import os

__all__ = ["DIRECTORY"]

#: absolute path of this package's folder (the entry the launcher adds to PYTHONPATH)
DIRECTORY = os.path.dirname(os.path.abspath(__file__))
