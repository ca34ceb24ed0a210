"""One module per client library: what ua-autotag patches in it, and how it tags.

Each module declares ``INTEGRATION`` (:class:`ua_autotag.spec.Integration`) and small
pure functions; none imports its client at import time. ``ua_autotag.catalog`` lists
them; the engine imports a module here only when its client's trigger module is imported.
"""
