"""The integration for :mod:`noio_client`, declared exactly like a real one.

Registered in ``CATALOG`` as ``noio`` by the benchmarks, so the wrapper is the one
the registry builds for every real integration (post-import hook, settings lookup,
tag rendering, span, error containment); only the client does no I/O.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ua_autotag.merge.tokens import merge_tokens
from ua_autotag.spec import Integration, Patch, Tag


def tag_headers(
    tag: Tag, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """Merge our token into ``headers['User-Agent']`` (the REST integrations' shape)."""
    headers = dict(kwargs.get("headers") or {})
    headers["User-Agent"] = merge_tokens(headers.get("User-Agent"), tag.value, tag.mode)
    tag.note(headers["User-Agent"], kwargs.get("host"), kwargs.get("port"))
    return args, {**kwargs, "headers": headers}


def target(instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, Any]:
    return kwargs.get("host"), kwargs.get("port")


INTEGRATION = Integration(
    name="noio",
    supported=">=0",
    system="noio",
    patches=(Patch("noio_client", "connect", before=tag_headers, span=True, target=target),),
)


def register() -> None:
    """Add ``noio`` to the catalog (benchmarks only; never in the shipped catalog)."""
    from ua_autotag.catalog import CATALOG, CatalogEntry

    CATALOG["noio"] = CatalogEntry(
        "noio_client", "http-user-agent", ("ua-autotag-noio-client-not-installed",), module=__name__
    )
