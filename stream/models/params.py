"""Checks of the learners' hyperparameters, shared so every model rejects the same mistakes.

A learning rate that is negative, NaN or infinite, or an L2 penalty that makes a step overshoot
zero (``lr * l2 >= 1`` flips and grows the weights every step), is a configuration mistake:
:class:`~stream.exceptions.ConfigError`, raised when the model is built, not NaNs much later.
"""

from __future__ import annotations

import math

from stream.exceptions import ConfigError

__all__ = ["check_dimension", "check_penalty", "check_rate"]


def check_dimension(n: int) -> int:
    """``n`` if it is a usable vector length."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an int >= 1, got {n!r}")
    return n


def check_rate(name: str, value: float) -> float:
    """``value`` as a float if it is finite and not negative (0 freezes what it drives)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0.0:
        raise ConfigError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def check_penalty(lr: float, l2: float) -> None:
    """Reject an L2 penalty so strong that one step overshoots: ``lr * l2`` must stay below 1."""
    if lr * l2 >= 1.0:
        raise ConfigError(f"lr * l2 must be < 1 (got {lr} * {l2}): the weights would oscillate")
