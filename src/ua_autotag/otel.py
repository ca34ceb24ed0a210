"""``opentelemetry-instrument`` integration: an ``opentelemetry_instrumentor`` entry point.

With ua-autotag installed, ``opentelemetry-instrument python app.py`` loads this
instrumentor, so ``UA_AUTOTAG_USER_AGENT`` (or ISV/PRODUCT) in the environment is all
it takes; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ua_autotag`` switches it off. This
module is the only one importing ``opentelemetry-instrumentation``, and only the OTel
launcher (which ships it) imports this module: it is not a dependency of ua-autotag.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

import ua_autotag
from ua_autotag.settings import OPTIONS

logger = logging.getLogger("ua_autotag")

#: the keywords ``instrument()`` takes, declared once in ua_autotag.settings.OPTIONS
_OPTIONS = tuple(option.name for option in OPTIONS)


class UaAutotagInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Delegates to :func:`ua_autotag.instrument` / :func:`ua_autotag.uninstrument`."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # every client is optional; each integration checks its own range

    def _instrument(self, **kwargs: Any) -> None:
        options = {key: kwargs[key] for key in _OPTIONS if key in kwargs}
        if options or ua_autotag.is_instrumented():
            if options:
                ua_autotag.instrument(**options)
            return
        # Importing ua_autotag already instrumented from the environment, or warned about a
        # bad value there; with no configuration at all there is nothing to tag with.
        logger.debug("ua_autotag: no UA_AUTOTAG_USER_AGENT in the environment; not instrumenting")

    def _uninstrument(self, **kwargs: Any) -> None:
        ua_autotag.uninstrument()
