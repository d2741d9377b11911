"""The admin API's request and response models: every rule of a request lives here, once.

The id rules and label limits come from monitor.domain; the OpenAPI document is
generated from these models (openapi.py), and requests are validated by them
(problems.py turns their errors into sentences).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
)

from monitor.domain import RecordState
from monitor.domain.ids import JOB_ID_RE, RECORD_ID_RE, RECORD_ID_RULE
from monitor.domain.labels import (
    LABEL_NAME_RE,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    RESERVED_LABELS,
    RESERVED_PREFIX,
)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_BUILD_NUMBER = 2_147_483_647  # as the API definitions bound build_no


def _integral_float(value: object) -> object:
    """42.0 is an integer to JSON Schema too; quotes and booleans stay refused (strict)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _whole_number_text(value: object) -> object:
    """A query's text read the way Python reads a whole number ("1.0" is not one)."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_LABELS or value.startswith(RESERVED_PREFIX):
        raise ValueError("reserved label name")
    return value


def _labels_schema(schema: dict[str, Any]) -> None:
    """Pydantic writes a dict's key rule as patternProperties, which lets other names through;
    JSON Schema's propertyNames + additionalProperties says what the validator does."""
    patterns = schema.pop("patternProperties", None)
    if patterns:
        ((pattern, value_schema),) = patterns.items()
        names = schema.setdefault("propertyNames", {})
        names["pattern"] = pattern
        schema["additionalProperties"] = value_schema


RecordId = Annotated[
    str,
    StringConstraints(strict=True, pattern=RECORD_ID_RE.pattern, min_length=36, max_length=36),
    Field(description=f"A build record id: {RECORD_ID_RULE}."),
]
JobId = Annotated[
    str,
    StringConstraints(strict=True, pattern=JOB_ID_RE.pattern),
    Field(description="A build job id: 32 characters of [0-9a-z]."),
]
BuildNumber = Annotated[
    int,
    Field(strict=True, ge=1, le=MAX_BUILD_NUMBER, description="The build's number in its job."),
    BeforeValidator(_integral_float),
]
LabelName = Annotated[
    str,
    StringConstraints(pattern=LABEL_NAME_RE.pattern),
    Field(
        json_schema_extra={
            "not": {
                "anyOf": [{"enum": sorted(RESERVED_LABELS)}, {"pattern": f"^{RESERVED_PREFIX}"}]
            }
        }
    ),
    AfterValidator(_not_reserved),
]
LabelValue = Annotated[str, StringConstraints(strict=True, max_length=MAX_LABEL_VALUE)]


Labels = Annotated[
    dict[LabelName, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description=(
            "Added to every series and log event of this record. Valid Prometheus label "
            "names, none of the monitor's own nor job/instance."
        ),
        json_schema_extra=_labels_schema,
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordById(_Strict):
    """Watch the record with this id."""

    model_config = ConfigDict(title="By record id")

    record_id: RecordId
    labels: Labels = Field(default_factory=dict)


class RecordByBuild(_Strict):
    """The monitor looks the record id up in CodeArts Build
    (GET /v1/record/{job_id}/{build_no}/record-info)."""

    model_config = ConfigDict(title="By job id and build number")

    job_id: JobId
    build_number: BuildNumber
    labels: Labels = Field(default_factory=dict)


class RecordRequest(RootModel[RecordById | RecordByBuild]):
    """A POST body: a record id, or the job id and build number to look it up by."""


# Every field a POST body may have, in the order error messages list them.
REQUEST_FIELDS = (
    *(
        f
        for f in dict.fromkeys([*RecordById.model_fields, *RecordByBuild.model_fields])
        if f != "labels"
    ),
    "labels",
)


class ListQuery(BaseModel):
    """The query of GET /records."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: Annotated[
        int,
        Field(strict=True, ge=1, le=MAX_PAGE),
        BeforeValidator(_whole_number_text),
    ] = Field(DEFAULT_PAGE, description=f"Records per page (default {DEFAULT_PAGE}).")
    cursor: RecordId | None = Field(None, description="The next_cursor of the previous page.")
    state: RecordState | None = None


# --- responses -----------------------------------------------------------------------------


class CurrentStage(BaseModel):
    """The first stage not in a terminal status."""

    build_stage: str
    display_name: str
    status: str


class StageSummary(BaseModel):
    total: int
    by_status: dict[str, int]
    current: CurrentStage | None
    fetched_at: float | None


class Stage(BaseModel):
    build_stage: str
    display_name: str
    status: str
    status_code: int | None
    sequence: int
    duration_seconds: float | None
    build_duration_seconds: float | None
    pending_seconds: float | None
    start_time: float | None
    finish_time: float | None


class Record(BaseModel):
    record_id: str
    state: RecordState
    source: str
    labels: dict[str, str]
    added_at: float = Field(description="Unix seconds")
    finished_at: float | None
    result: str | None
    error: str | None
    stage_summary: StageSummary


class RecordDetail(Record):
    stages: list[Stage]


class RecordPage(BaseModel):
    records: list[Record]
    total: int
    next_cursor: str | None


class Error(BaseModel):
    """Every refusal: a code, a sentence, and one line per rule broken."""

    error: str
    message: str
    problems: list[str] | None = None
