"""Deterministic online learners over dense feature vectors, for live scoring and replay.

Everything here is pure Python floats with one fixed summation rule (:mod:`stream.models.arith`),
so a replay on another machine gives bitwise-identical scores; numpy and BLAS would not (their
reductions depend on the CPU's SIMD kernels). Each model mirrors a River estimator closely enough
to be tested against it, and snapshots to a JSON-able dict with ``to_state`` / ``from_state``.
"""

from __future__ import annotations

from stream.models.hygiene import DEFAULT_LIMIT, clean_inputs, is_finite_vector
from stream.models.logistic import LOGIT_CAP, LogisticModel
from stream.models.prior import ColdStartPrior
from stream.models.scaler import RunningScaler
from stream.models.softmax import OTHER, SoftmaxModel
from stream.models.validation import BinaryValidation, MulticlassValidation

__all__ = [
    "DEFAULT_LIMIT",
    "LOGIT_CAP",
    "OTHER",
    "BinaryValidation",
    "ColdStartPrior",
    "LogisticModel",
    "MulticlassValidation",
    "RunningScaler",
    "SoftmaxModel",
    "clean_inputs",
    "is_finite_vector",
]
