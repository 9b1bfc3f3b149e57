"""ASGI guards serving both doors (REST and GraphQL): request body size limit, security headers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON is never rendered by a browser, so API responses may load nothing and be framed nowhere.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def asset_origin(assets_url: str) -> str:
    """The origin (scheme://host[:port]) that GraphiQL's scripts are served from."""
    parts = urlsplit(assets_url)
    return f"{parts.scheme}://{parts.netloc}"


def graphiql_policy(asset_origins: Iterable[str]) -> str:
    """The Content-Security-Policy of the HTML pages: GraphiQL and Swagger UI (/api/docs).

    Their bootstrap scripts and styles are inline in the page, hence 'unsafe-inline' there (and
    only there); they fetch /graphql and /api/... on their own origin.
    """
    origins = " ".join(asset_origins)
    return (
        "default-src 'none'; "
        f"script-src 'unsafe-inline' {origins}; "
        f"style-src 'unsafe-inline' {origins}; "
        f"font-src data: {origins}; "
        f"img-src data: {origins}; "
        "connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


# A door's JSON error body for a message (the doors' error shapes differ).
ErrorBody = Callable[[str], bytes]


class BodySizeLimit:
    """Answer 413 as soon as a request body is known to exceed `max_bytes`.

    A declared Content-Length is checked before anything is read (the server holds the body to
    it, so such a request needs no counting); only a chunked body is counted as it arrives, so
    requests without a body (every GET) pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        refusal: ErrorBody,
        refusal_by_path: Mapping[str, ErrorBody] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Each door answers in its own error shape: `refusal` unless the path has its own.
        self.refusal = refusal
        self.refusal_by_path = dict(refusal_by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_framing(scope)
        if not chunked:
            # A declared length is held to by the server; no length and no chunking: no body.
            if declared is not None and declared > self.max_bytes:
                await self._refuse(scope, send)
            else:
                await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes"
        content = self.refusal_by_path.get(scope["path"], self.refusal)(message)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    # The unread rest of the body makes the connection unusable for another request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


class _BodyTooLarge(Exception):
    pass


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length, and whether the body comes chunked (only then counted)."""
    declared = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The server has already rejected a malformed Content-Length.
            declared = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


class SecurityHeaders:
    """Add browser hardening headers to every response; the HTML pages get their own CSP."""

    def __init__(self, app: ASGIApp, *, graphiql_asset_origins: Iterable[str]) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        self._api_headers = [*common, (b"content-security-policy", API_POLICY.encode())]
        self._html_headers = [
            *common,
            (b"content-security-policy", graphiql_policy(graphiql_asset_origins).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                message["headers"] = headers + self._headers_for(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers_for(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # Only the GraphiQL and Swagger UI pages are HTML; everything else the API sends is data.
        for name, value in headers:
            if name.lower() == b"content-type" and value.startswith(b"text/html"):
                return self._html_headers
        return self._api_headers
