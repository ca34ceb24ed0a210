"""The partner User-Agent value: parsing, validation and per-carrier rendering.

The partner format is ``<isv>_<product>[/<version>]``. The character set is the
intersection of what every carrier accepts without quoting or escaping:

* HTTP ``User-Agent`` product tokens (RFC 9110 ``tchar``) and the Databricks SDK's
  ``^[a-zA-Z0-9_.+-]+$`` rule for product / extra entries;
* libpq ``application_name`` (printable ASCII; PostgreSQL cuts at 63 bytes);
* the Spark Connect client user agent (URL-quoted, at most 2048 characters);
* ODBC / JDBC attribute values (no ``;``, ``{``, ``}`` or ``=``).

So: ``isv`` is letters, digits and ``. + -`` (no ``_``: the first ``_`` separates it
from the product), ``product`` may also contain ``_``, ``version`` is letters, digits
and ``. + -``; each part starts with a letter or digit. The whole value is at most
:data:`MAX_LENGTH` characters; carriers with a smaller limit are checked by
:meth:`UserAgent.render`.

This module is imported by ``import ua_autotag``; it deliberately uses no ``re``,
``typing`` or ``dataclasses`` so that the import stays well under a millisecond.
"""

from __future__ import annotations

from .merge import CARRIERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = [
    "MAX_LENGTH",
    "ConfigurationError",
    "InvalidUserAgent",
    "UserAgent",
]

MAX_LENGTH = 128

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ALLOWED = {
    "isv": (
        _ALNUM | frozenset(".+-"),
        "letters, digits and . + - (no '_': it separates isv from product)",
    ),
    "product": (_ALNUM | frozenset("_.+-"), "letters, digits and _ . + -"),
    "version": (_ALNUM | frozenset(".+-"), "letters, digits and . + -"),
    #: a value without its '_' yet: every character any part may hold, '/' split off
    "": (_ALNUM | frozenset("_.+-"), "letters, digits and _ . + -"),
}


class ConfigurationError(ValueError):
    """A configuration value (argument or environment variable) that cannot be used."""


class InvalidUserAgent(ConfigurationError):
    """A User-Agent value that breaks a partner or carrier rule.

    The message names the rule and shows the offending value with ``repr``.
    """


def _check_part(what: str, value: object) -> None:
    """Raise naming the most specific rule ``value`` breaks (``what`` "": the whole value)."""
    what = f"{what} " if what else ""
    if not isinstance(value, str):
        raise InvalidUserAgent(f"User-Agent {what}must be a string: {value!r}")
    if not value:
        raise InvalidUserAgent(f"User-Agent {what}must not be empty: {value!r}")
    allowed, description = _ALLOWED[what.strip()]
    for ch in value:
        if ch in allowed:
            continue
        if ch in "\r\n":
            rule = "must not contain CR or LF"
        elif ord(ch) < 32 or ord(ch) == 127:
            rule = "must not contain control characters"
        elif ord(ch) > 127:
            rule = "must be ASCII"
        elif ch.isspace():
            rule = "must not contain whitespace"
        else:
            rule = f"must contain only {description}"
        raise InvalidUserAgent(f"User-Agent {what}{rule}: {value!r}")
    if value[0] not in _ALNUM:
        raise InvalidUserAgent(f"User-Agent {what}must start with a letter or digit: {value!r}")


class UserAgent:
    """A validated partner User-Agent, ``<isv>_<product>[/<version>]``.

    Build it from parts (``UserAgent("AcmePartner", "DatEngProduct", "3.5")``) or
    with :meth:`parse`. Construction validates, so an instance is always safe to send.
    Immutable and hashable.
    """

    __slots__ = ("isv", "product", "text", "version")

    isv: str
    product: str
    version: Optional[str]
    text: str

    def __init__(self, isv: str, product: str, version: Optional[str] = None) -> None:
        _check_part("isv", isv)
        _check_part("product", product)
        if version is not None:
            _check_part("version", version)
        text = f"{isv}_{product}" if version is None else f"{isv}_{product}/{version}"
        if len(text) > MAX_LENGTH:
            raise InvalidUserAgent(
                f"User-Agent must be at most {MAX_LENGTH} characters (got {len(text)}): {text!r}"
            )
        object.__setattr__(self, "isv", isv)
        object.__setattr__(self, "product", product)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "text", text)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("UserAgent is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("UserAgent is immutable")

    @classmethod
    def parse(cls, text: str) -> UserAgent:
        """Parse ``"AcmePartner_DatEngProduct/3.5"`` (the version is optional)."""
        if not isinstance(text, str):
            raise InvalidUserAgent(f"User-Agent must be a string: {text!r}")
        if not text:
            raise InvalidUserAgent(f"User-Agent must not be empty: {text!r}")
        if len(text) > MAX_LENGTH:
            raise InvalidUserAgent(
                f"User-Agent must be at most {MAX_LENGTH} characters "
                f"(got {len(text)}): {text[:MAX_LENGTH]!r}..."
            )
        name, slash, version = text.partition("/")
        if slash and "/" in version:
            raise InvalidUserAgent(
                f"User-Agent must have the form <isv>_<product>[/<version>] with at most one "
                f"'/': {text!r}"
            )
        isv, underscore, product = name.partition("_")
        if not underscore:
            if name:  # a bad character is the likelier mistake: name it first (no part
                _check_part("", name)  # to blame yet: the rule is the whole value's)
            raise InvalidUserAgent(
                "User-Agent must have the form <isv>_<product>[/<version>], with '_' between "
                f"isv and product name: {text!r}"
            )
        try:
            return cls(isv, product, version if slash else None)
        except InvalidUserAgent as exc:
            raise InvalidUserAgent(f"{exc} (in {text!r})") from None

    @classmethod
    def coerce(cls, value: object) -> UserAgent:
        """Accept a :class:`UserAgent` or its string form."""
        if isinstance(value, UserAgent):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise InvalidUserAgent(f"User-Agent must be a str or UserAgent: {value!r}")

    @property
    def name(self) -> str:
        """``<isv>_<product>``, without the version."""
        return f"{self.isv}_{self.product}"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"UserAgent({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserAgent) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def render(self, carrier: str) -> str:
        """The value as ``carrier`` sends it; raises if it cannot fit there.

        Every carrier takes the canonical text unchanged (the character set was
        chosen for that, and it is ASCII, so characters are bytes); only the
        length limit differs.
        """
        text = self.text
        limit = CARRIERS[carrier].max_bytes
        if limit is not None and len(text) > limit:
            raise InvalidUserAgent(
                f"User-Agent is {len(text)} bytes, over the {limit}-byte limit of "
                f"{CARRIERS[carrier].description}: {text!r}"
            )
        return text
