"""Configuration of the pure step: frozen, validated, passed in explicitly (never read from env)."""

from __future__ import annotations

from dataclasses import dataclass

from stream.exceptions import ConfigError

__all__ = ["PolicyConfig", "StepConfig"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Thresholds of the rule-based default policy (see :mod:`stream.policy`)."""

    version: str = "rules-v1"
    discount_min_cart_value: float = 50.0
    discount_min_views_since_add: int = 3
    signup_min_page_views: int = 5
    recommend_min_category_views: int = 3

    def __post_init__(self) -> None:
        if self.discount_min_cart_value < 0:
            raise ConfigError("discount_min_cart_value must be >= 0")
        for name in (
            "discount_min_views_since_add",
            "signup_min_page_views",
            "recommend_min_category_views",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")


@dataclass(frozen=True, slots=True)
class StepConfig:
    """Everything the step's behaviour depends on, besides the profile and the event."""

    feature_version: str = "features-v1"
    policy: PolicyConfig = PolicyConfig()
    #: How many recent message ids each profile remembers to apply duplicates once.
    dedupe_window: int = 64
    max_cart_lines: int = 50
    max_categories: int = 20
    max_price: float = 1_000_000.0
    max_quantity: int = 1000
    max_text_length: int = 100

    def __post_init__(self) -> None:
        for name in (
            "dedupe_window",
            "max_cart_lines",
            "max_categories",
            "max_quantity",
            "max_text_length",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not self.max_price > 0:
            raise ConfigError("max_price must be > 0")
