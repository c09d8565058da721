"""Rate limits per key and per workspace (SPEC §7), counted where the reservation is written."""

from tollway.limits.admission import (
    Admission,
    KeyConfig,
    admit,
    close_admission,
    prune_admissions,
    read_config,
    record,
)
from tollway.limits.rates import LIMIT_FIELDS, NO_LIMITS, WINDOW_US, RateLimits, format_reset

__all__ = [
    "LIMIT_FIELDS",
    "NO_LIMITS",
    "WINDOW_US",
    "Admission",
    "KeyConfig",
    "RateLimits",
    "admit",
    "close_admission",
    "format_reset",
    "prune_admissions",
    "read_config",
    "record",
]
