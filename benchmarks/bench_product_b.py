"""A second library product for the attribution benchmark (never on the timed stacks)."""

from __future__ import annotations
