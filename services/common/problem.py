"""RFC 9457 problem+json responses, so every error a service returns explains itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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


@web.middleware
async def problem_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (404, 405, 413, ...) as problem+json too, instead of text/plain:
    a client sees one error format whichever layer refused the request."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, exc.reason, exc.text or "")
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
