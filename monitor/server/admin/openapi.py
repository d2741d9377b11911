"""The OpenAPI 3.1 document of /api/v1, generated from the models' JSON Schema.

Only the shape of the API (paths, methods, which status means what) is written
here; every rule a value must follow comes from models.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from monitor.server.admin.handlers import MAX_BODY
from monitor.server.admin.models import (
    Error,
    ListQuery,
    Record,
    RecordDetail,
    RecordId,
    RecordPage,
    RecordRequest,
)

REF = "#/components/schemas/{model}"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (RecordRequest, "validation"),
    (ListQuery, "validation"),
    (Record, "serialization"),
    (RecordDetail, "serialization"),
    (RecordPage, "serialization"),
    (Error, "serialization"),
]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or path parameter is a string or absent, never JSON null."""
    options = schema.get("anyOf")
    if options:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
    return {k: v for k, v in schema.items() if not (k == "default" and v is None)}


def _json(description: str, ref: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model=ref)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, "Error")


def openapi_document(prefix: str = "/api/v1") -> dict[str, Any]:
    """OpenAPI 3.1 description of the admin API mounted at `prefix`."""
    _, defs = models_json_schema(_MODELS, ref_template=REF)
    schemas = defs["$defs"]
    query = schemas.pop(ListQuery.__name__)
    parameters = [
        {
            "name": name,
            "in": "query",
            "schema": _not_null({k: v for k, v in prop.items() if k != "description"}),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in query["properties"].items()
    ]
    record_param = {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": TypeAdapter(RecordId).json_schema(ref_template=REF),
        "description": "The build record id (36 characters of [0-9a-z-]).",
    }
    bad_token = _error("No bearer token, or not the admin token")
    disabled = _error("Changes are disabled: no admin token configured")
    read_errors = {"401": bad_token}  # only when MONITOR_ADMIN_READ_PROTECTED=true
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codearts-stage-monitor admin API",
            "version": "1",
            "description": (
                "Which build records the monitor watches. Changes need "
                "'Authorization: Bearer <MONITOR_ADMIN_TOKEN>'; reads are open unless "
                "MONITOR_ADMIN_READ_PROTECTED=true (then 401 without the token). Errors are "
                '{"error": CODE, "message": TEXT, "problems": [TEXT, ...]}. '
                "This document is generated from the API's request and response models."
            ),
        },
        "paths": {
            f"{prefix}/records": {
                "get": {
                    "operationId": "listRecords",
                    "summary": "Watched records, ordered by record id, a page at a time",
                    "parameters": parameters,
                    "responses": {
                        "200": _json("One page", "RecordPage"),
                        "400": _error("A query parameter is not valid"),
                        **read_errors,
                    },
                },
                "post": {
                    "operationId": "addRecord",
                    "summary": "Watch a record (idempotent: a watched id answers 200)",
                    "description": (
                        "201 when the record is new, 200 when it was already watched. Labels "
                        "given for a watched record replace its labels; omitted or empty "
                        "labels leave them as they are."
                    ),
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="RecordRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("Already watched", "Record"),
                        "201": _json("Now watched", "Record"),
                        "400": _error("The body is not JSON"),
                        "401": bad_token,
                        "403": disabled,
                        "404": _error("CodeArts Build knows no such job and build"),
                        "413": _error(f"The body is larger than {MAX_BODY} bytes"),
                        "415": _error("The body is not sent as application/json"),
                        "422": _error("The record id or a label is not valid"),
                        "502": _error("CodeArts Build could not be asked for the build"),
                        "503": _error("The daemon is not connected to CodeArts Build"),
                    },
                },
            },
            f"{prefix}/records/{{record_id}}": {
                "get": {
                    "operationId": "getRecord",
                    "summary": "One record with its current stage snapshot",
                    "parameters": [record_param],
                    "responses": {
                        "200": _json("The record", "RecordDetail"),
                        "400": _error("Not a record id"),
                        "404": _error("Not watched"),
                        **read_errors,
                    },
                },
                "delete": {
                    "operationId": "deleteRecord",
                    "summary": "Stop watching a record; its series vanish at the next scrape",
                    "security": [{"bearer": []}],
                    "parameters": [record_param],
                    "responses": {
                        "204": {"description": "No longer watched"},
                        "400": _error("Not a record id"),
                        "401": bad_token,
                        "403": disabled,
                        "404": _error("Not watched"),
                    },
                },
            },
            f"{prefix}/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }
