"""Identifiers the API uses, and the one rule for each."""

from __future__ import annotations

import re

# 36 characters of digits, lowercase letters and hyphens: a UUID, as the API gives it.
RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")
# A job id: 32 characters of digits and lowercase letters, as the API definitions give it.
JOB_ID_RE = re.compile(r"^[0-9a-z]{32}$")
# A CodeArts project id: "32位数字、小写字母组合" (the `{project_id}` of the job lists).
PROJECT_ID_RE = re.compile(r"^[0-9a-z]{32}$")
RECORD_ID_RULE = "36 characters of [0-9a-z-]"


def is_valid_record_id(value: str) -> bool:
    """A record id is 36 characters of digits, lowercase letters and hyphens."""
    return RECORD_ID_RE.fullmatch(value) is not None


def is_valid_job_id(value: str) -> bool:
    """A job id is 32 characters of digits and lowercase letters."""
    return JOB_ID_RE.fullmatch(value) is not None
