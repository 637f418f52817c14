"""RFC 9457 problem+json responses, so every error a service returns explains itself."""

from __future__ import annotations

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str = "", **extra: object) -> web.Response:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = web.json_response(body, status=status)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response
