"""Requests checked against the models, and every rule they break said in a sentence."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from monitor.domain import RecordState
from monitor.domain.labels import label_errors
from monitor.server.admin.models import (
    MAX_BUILD_NUMBER,
    MAX_PAGE,
    REQUEST_FIELDS,
    ListQuery,
    RecordByBuild,
    RecordById,
    RecordId,
)

_RECORD_ID: TypeAdapter[str] = TypeAdapter(RecordId)
_ID_FIELDS = ("record_id", "job_id", "build_number")
OBJECT_HINT = (
    'the body must be a JSON object like {"record_id": "<36 characters>", '
    '"labels": {"team": "payments"}}'
)


def shown(value: str, limit: int = 48) -> str:
    """A user's value quoted for a message, cut short when long."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def record_id_problem(value: object, field: str = "record_id") -> str | None:
    """Why `value` is not a record id, or None when it is one."""
    if not isinstance(value, str):
        return f"{field} must be a string"
    try:
        _RECORD_ID.validate_python(value)
    except ValidationError:
        return (
            f"{field} {shown(value)} is not a record id: it must be exactly 36 characters "
            f"of digits, lowercase letters and '-' (got {len(value)} characters)"
        )
    return None


def _job_id_problem(value: object) -> str:
    what = shown(value) if isinstance(value, str) else "of that type"
    return (
        f"job_id {what} is not a job id: it must be exactly 32 characters of digits "
        "and lowercase letters"
    )


def _explain(exc: ValidationError, data: Mapping[str, object]) -> list[str]:
    """One sentence per field the model refused (a field's rules explained together)."""
    out: list[str] = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        missing = err["type"] == "missing"
        if field == "record_id":
            if missing:
                continue  # said once, before validation, with both ways to ask
            problem = record_id_problem(data["record_id"])
            lines = [problem] if problem else []
        elif field == "job_id":
            lines = [
                "job_id is required with build_number"
                if missing
                else _job_id_problem(data["job_id"])
            ]
        elif field == "build_number":
            lines = [
                "build_number is required with job_id"
                if missing
                else f"build_number must be a whole number from 1 to {MAX_BUILD_NUMBER}, "
                "without quotes"
            ]
        elif field == "labels":
            raw = data.get("labels")
            if isinstance(raw, dict):
                lines = label_errors(raw) or [f"labels: {err['msg']}"]
            else:
                lines = [
                    'labels must be an object of name/value strings, like {"team": "payments"}'
                ]
        else:
            lines = [f"{field}: {err['msg']}"]
        out.extend(line for line in lines if line not in out)
    return out


def validate_record_request(data: object) -> tuple[RecordById | RecordByBuild | None, list[str]]:
    """The request a POST body makes, or every problem with it."""
    if not isinstance(data, dict):
        return None, [OBJECT_HINT]
    problems = [
        f"unknown field {shown(str(k))} (allowed: {', '.join(REQUEST_FIELDS)})"
        for k in data
        if k not in REQUEST_FIELDS
    ]
    # An id field given as null counts as not given.
    body = {
        k: v for k, v in data.items() if k in REQUEST_FIELDS and not (k in _ID_FIELDS and v is None)
    }
    model: type[RecordById | RecordByBuild] = RecordById
    if "record_id" in body:
        if "job_id" in body or "build_number" in body:
            problems.append("give either record_id, or job_id and build_number, not both")
            body.pop("job_id", None)
            body.pop("build_number", None)
    elif "job_id" in body or "build_number" in body:
        model = RecordByBuild
    else:
        problems.append(
            "record_id is required (or job_id and build_number, for a build registering itself)"
        )
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        problems.extend(_explain(exc, data))
        return None, problems
    return (None, problems) if problems else (request, [])


def validate_list_query(query: Mapping[str, str]) -> tuple[ListQuery | None, list[str]]:
    """The page a GET /records query asks for, or every problem with it."""
    try:
        return ListQuery.model_validate(dict(query)), []
    except ValidationError as exc:
        return None, _explain_query(exc, query)


def _explain_query(exc: ValidationError, query: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for field in dict.fromkeys(str(e["loc"][0]) for e in exc.errors() if e["loc"]):
        raw = query.get(field, "")
        if field == "limit":
            problems.append(f"limit must be a whole number from 1 to {MAX_PAGE}")
        elif field == "cursor":
            problem = record_id_problem(raw, "cursor")
            problems.append(f"{problem} (pass the next_cursor of the previous page)")
        elif field == "state":
            states = ", ".join(s.value for s in RecordState)
            problems.append(f"state {shown(raw)} is not one of {states}")
        else:
            problems.append(f"{field} is not valid")
    return problems
