"""pg8000 (pure Python): ``application_name`` on every connection, one connect span each.

Patch point: ``pg8000.core.CoreConnection.__init__``, which every connection runs
(``pg8000.connect``, ``pg8000.dbapi.connect``, ``pg8000.native.Connection``, the
SQLAlchemy ``postgresql+pg8000`` dialect) with the caller's ``application_name``
keyword; merged with the libpq rules (63 bytes, the caller's part cut, never ours).
pg8000 reads no environment and has no URI: ``PGAPPNAME`` is no caller value here, and
``application_name`` inside ``startup_params`` is left to pg8000 (it rejects it).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from .. import telemetry
from ..merge.libpq import merge_application_name
from ..spec import Integration, Patch, Tag, argument, with_argument

# CoreConnection.__init__(user, host, database, port, password, source_address,
# unix_sock, ssl_context, timeout, tcp_keepalive, application_name, ...)
_HOST, _PORT, _UNIX_SOCK, _APPLICATION_NAME = 1, 3, 6, 10


def _tag_init(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    existing = argument(args, kwargs, _APPLICATION_NAME, "application_name")
    if existing is not None and not isinstance(existing, str):
        return args, kwargs  # bytes or worse: pg8000's to judge, not ours to rewrite
    value = merge_application_name(existing, tag.value, tag.mode)
    if telemetry.current() is not None:
        sock = argument(args, kwargs, _UNIX_SOCK, "unix_sock")
        host = sock or argument(args, kwargs, _HOST, "host") or "localhost"
        tag.note(value, str(host), None if sock else argument(args, kwargs, _PORT, "port") or 5432)
    if value == existing:
        return args, kwargs
    return with_argument(args, kwargs, _APPLICATION_NAME, "application_name", value)


INTEGRATION = Integration(
    name="pg8000",
    supported=">=1.29,<2",
    system="postgresql",
    patches=(Patch("pg8000.core", "CoreConnection.__init__", before=_tag_init, span=True),),
)
