"""A real integration module for engine tests; its client is written to disk by the test."""

from __future__ import annotations

from typing import Any

from ua_autotag.merge.tokens import merge_tokens
from ua_autotag.spec import Integration, Patch, Tag


def _tag_headers(tag: Tag, instance: Any, args: Any, kwargs: Any) -> Any:
    headers = dict(kwargs.get("headers") or {})
    headers["User-Agent"] = merge_tokens(headers.get("User-Agent"), tag.value, tag.mode)
    tag.note(headers["User-Agent"], kwargs.get("host"), kwargs.get("port"))
    return args, {**kwargs, "headers": headers}


def _target(instance: Any, args: Any, kwargs: Any) -> Any:
    return kwargs.get("host"), kwargs.get("port")


INTEGRATION = Integration(
    name="demo",
    supported=">=1.0",
    system="demo",
    patches=(
        Patch(
            "demo_client",
            "connect",
            before=_tag_headers,
            span=True,
            target=_target,
            essential=True,
        ),
        Patch("demo_client", "Client.open", before=_tag_headers, span=True, target=_target),
        Patch("demo_client", "Client.aopen", before=_tag_headers, span=True),
        Patch("demo_client", "Client.missing_in_old_versions", optional=True),
    ),
)
