"""``python -m ua_autotag ...`` is the ``ua-autotag`` command."""

from ua_autotag.cli import main

raise SystemExit(main())
