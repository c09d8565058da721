"""Rate limits per key and per workspace (SPEC §7), counted where the reservation is written."""

from tollway.limits.admission import (
    Admission,
    KeyConfig,
    Ticket,
    admit,
    close_admission,
    forget_admission,
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
    "Ticket",
    "admit",
    "close_admission",
    "forget_admission",
    "format_reset",
    "prune_admissions",
    "read_config",
    "record",
]
