"""The error bodies the reference documents, one helper per source of errors."""

from __future__ import annotations

import uuid

from aiohttp import web


def error_body(code: str, msg: str) -> dict[str, str]:
    """CodeArts Build's `{"error_code", "error_msg"}`."""
    return {"error_code": code, "error_msg": msg}


def apigw_body(code: str, msg: str) -> dict[str, str]:
    """The API Gateway's error body: CodeArts' shape plus a `request_id`."""
    return {"error_code": code, "error_msg": msg, "request_id": uuid.uuid4().hex}


def codearts_error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response(error_body(code, msg), status=status)


def keystone_error(code: int, message: str, title: str) -> web.Response:
    """IAM's `{"error": {"code", "message", "title"}}`."""
    return web.json_response(
        {"error": {"code": code, "message": message, "title": title}}, status=code
    )
