"""Per-record labels: the rules a user-supplied label must follow."""

from __future__ import annotations

import re
from collections.abc import Mapping

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Ours, Prometheus's target labels, and histogram/summary internals.
RESERVED_LABELS = frozenset(
    {
        "record_id",
        "build_stage",
        "display_name",
        "status",
        "state",
        "from_status",
        "to_status",
        "outcome",
        "code",
        "version",
        "job",
        "instance",
        "le",
        "quantile",
    }
)
RESERVED_PREFIX = "__"  # Prometheus keeps names starting with it for itself
MAX_LABELS = 8
MAX_LABEL_VALUE = 128  # characters; longer values from the API are clipped


def label_errors(labels: Mapping[str, object]) -> list[str]:
    """Every reason these labels cannot be used; empty when they can."""
    errors = []
    if len(labels) > MAX_LABELS:
        errors.append(f"at most {MAX_LABELS} labels, got {len(labels)}")
    for name, value in labels.items():
        if not LABEL_NAME_RE.fullmatch(name) or name.startswith(RESERVED_PREFIX):
            errors.append(f"label name {name!r} is not a valid Prometheus label name")
        elif name in RESERVED_LABELS:
            errors.append(f"label name {name!r} is reserved")
        if not isinstance(value, str):
            errors.append(f"label {name!r}: value must be a string")
        elif len(value) > MAX_LABEL_VALUE:
            errors.append(f"label {name!r}: value longer than {MAX_LABEL_VALUE} characters")
    return errors


def clip_label(value: str) -> str:
    """A label value the API gave, clipped to MAX_LABEL_VALUE characters."""
    return value if len(value) <= MAX_LABEL_VALUE else value[:MAX_LABEL_VALUE]


# What a record's job is, as discovery or ShowBuildRecord tells it; a watchlist source
# that re-adds a record without them does not take them away.
JOB_LABELS = ("job_id", "job_name", "build_number", "branch")


def anchored_pattern(pattern: str) -> re.Pattern[str]:
    """A job-name pattern, anchored at both ends as Prometheus relabelling regexes are."""
    return re.compile(f"(?:{pattern})\\Z")
