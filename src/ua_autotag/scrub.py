"""Secrets out of free text: what every log line, warning, span and error of ours passes.

Connection strings, URLs and exception messages can carry passwords and tokens; anything
of theirs we print goes through :func:`scrub` first. Standard library only.
"""

from __future__ import annotations

import functools
import re
from typing import Pattern, Tuple

__all__ = ["scrub"]

# Secrets in free text: key=value pairs (conninfo, ODBC, query strings), URL userinfo,
# bearer tokens and Databricks personal access tokens. (pattern, replacement) pairs,
# compiled on first use: scrubbing happens on failures, not on every instrument().
_SECRET_RULES = (
    (
        r"(?i)\b(password|passwd|pwd|token|access_token|auth_token|secret|client_secret|"
        r"sslpassword|api_key|apikey)(\s*[=:]\s*)('(?:[^'\\]|\\.)*'|\{[^}]*\}|\"[^\"]*\"|[^\s;&,]*)",
        r"\1\2***",
    ),
    (r"(?i)(://[^:/@\s]*:)[^@\s]*(@)", r"\1***\2"),
    (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1***"),
    (r"\bdapi[0-9a-f]{16,}\b", "dapi***"),
)


@functools.lru_cache(maxsize=1)
def _secret_patterns() -> Tuple[Tuple[Pattern[str], str], ...]:
    return tuple((re.compile(pattern), replacement) for pattern, replacement in _SECRET_RULES)


def scrub(text: str) -> str:
    """Mask anything that looks like a credential in ``text``."""
    for pattern, replacement in _secret_patterns():
        text = pattern.sub(replacement, text)
    return text
