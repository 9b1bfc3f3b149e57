"""The /graphql endpoint: GraphQL over HTTP, with status codes and media types per its spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from resolvers.context import Context, ContextFactory
from resolvers.errors import AppError, RetryLater
from schema.graphiql import GraphiQL
from schema.persisted import PersistedQueries, PersistedQueryError

GRAPHQL_PATH = "/graphql"
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

SUBSCRIPTIONS_NEED_A_STREAM = (
    "Subscribe over a WebSocket (graphql-transport-ws) or with Accept: text/event-stream"
)
_STATUS_BY_CODE = {
    "UNAUTHENTICATED": 401,
    "SERVICE_UNAVAILABLE": 503,
    "SERVICE_MISCONFIGURED": 500,
}
_NAME = r"[_A-Za-z][_0-9A-Za-z]{0,99}"
# The name of a document's first operation, for logs and metrics when operationName is absent;
# a full parse is left to the schema, which caches it.
_FIRST_OPERATION_NAME = re.compile(
    rf"(?:\s|,|#[^\n]*\n)*+(?:query|mutation|subscription)\s+({_NAME})"
)


@dataclass(frozen=True, slots=True)
class GraphQLEndpoint:
    """Parses a GraphQL request, runs it against the schema and renders the response."""

    schema: strawberry.Schema
    graphiql: GraphiQL | None = None
    # None: a request must carry its query (no persisted queries at all).
    persisted: PersistedQueries | None = None

    def routes(self) -> list[Route]:
        # Mounted as an ASGI app, so that every method reaches `handle` and even the 405 for
        # PUT or DELETE is a GraphQL response.
        return [Route(GRAPHQL_PATH, self)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            message = "Send GraphQL requests with GET (queries only) or POST"
            return _request_error(message, 405, GRAPHQL_RESPONSE, {"Allow": "GET, POST"})
        accept = request.headers.get("accept", "")
        no_query = request.method == "GET" and not (
            {"query", "extensions"} & request.query_params.keys()
        )
        if no_query and self.graphiql is not None and "text/html" in accept:
            return HTMLResponse(self.graphiql.html())
        media_type = _negotiate(accept)
        if media_type is None:
            message = f"Accept {GRAPHQL_RESPONSE} or {JSON}"
            return _request_error(message, 406, GRAPHQL_RESPONSE)
        if no_query:
            return _request_error("Send a GraphQL query in the `query` parameter", 400, media_type)
        try:
            params = await _read_params(request)
        except _BadRequest as bad:
            return _request_error(bad.message, bad.status, media_type, bad.headers)
        request.state.graphql_operation = _operation_name(params)
        factory: ContextFactory = request.state.context_factory
        try:
            context = await factory(
                authorization=request.headers.get("authorization"),
                request_id=request.state.request_id,
                idempotency_key=request.headers.getlist("idempotency-key"),
            )
        except AppError as error:
            return _app_error(error, media_type)
        if context.principal is not None:
            request.state.user_id = context.principal.user_id
        if self.persisted is not None:
            try:
                params["query"] = await self.persisted.document(
                    request.state.documents, context, params["query"], params["extensions"]
                )
            except PersistedQueryError as error:
                formatted = GraphQLError(error.message, extensions={"code": error.code}).formatted
                return _response({"errors": [formatted]}, error.status, media_type, error.headers)
            except AppError as error:
                return _app_error(error, media_type)
        elif params["query"] is None:
            return _request_error("`query` must be a string", 400, media_type)
        request.state.graphql_operation = _operation_name(params)
        return await self._execute(request, params, context, media_type)

    async def _execute(
        self, request: Request, params: dict[str, Any], context: Context, media_type: str
    ) -> Response:
        allowed = (
            {OperationType.QUERY}
            if request.method == "GET"
            else {OperationType.QUERY, OperationType.MUTATION}
        )
        try:
            result = await self.schema.execute(
                params["query"],
                variable_values=params["variables"],
                context_value=context,
                operation_name=params["operationName"],
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                return _request_error(SUBSCRIPTIONS_NEED_A_STREAM, 400, media_type)
            return _request_error(
                "Mutations must be sent with POST", 405, media_type, {"Allow": "POST"}
            )
        except MissingQueryError:
            return _request_error("The request has no query", 400, media_type)
        except CannotGetOperationTypeError as error:
            return _request_error(error.as_http_error_reason(), 400, media_type)
        return _render(result, media_type)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = dict(headers or {})


async def _read_params(request: Request) -> dict[str, Any]:
    """query, variables and operationName from the URL (GET) or a JSON body (POST)."""
    if request.method == "GET":
        raw: Any = dict(request.query_params)
        for name in ("variables", "extensions"):
            if name in raw:
                raw[name] = _json(raw[name], name)
    else:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (JSON, "application/graphql+json"):
            # Form and multipart bodies would let another site post here without CORS.
            raise _BadRequest("Send the request body as application/json", 415)
        raw = _json(await request.body(), "body")
    if not isinstance(raw, dict):
        raise _BadRequest("The request body must be a JSON object (batching is not supported)")
    query = raw.get("query")
    # No query is for persisted queries (extensions.persistedQuery) to make up for.
    if not isinstance(query, str) and not (query is None and "extensions" in raw):
        raise _BadRequest("`query` must be a string")
    variables = raw.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise _BadRequest("`variables` must be an object")
    operation_name = raw.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise _BadRequest("`operationName` must be a string")
    extensions = raw.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise _BadRequest("`extensions` must be an object")
    return {
        "query": query,
        "variables": variables,
        "operationName": operation_name,
        "extensions": extensions,
    }


def _operation_name(params: dict[str, Any]) -> str | None:
    """The operation's name for logs and metrics: a GraphQL name, never other client text."""
    name = params["operationName"]
    if name is None:
        match = _FIRST_OPERATION_NAME.match(params["query"] or "")
        return match[1] if match else None
    return name if re.fullmatch(_NAME, name) else None


def _json(raw: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _BadRequest(f"The {what} is not valid JSON") from None


@lru_cache(maxsize=256)
def _negotiate(accept: str) -> str | None:
    """The media type to answer in: the one the client rates higher, the GraphQL one on a tie
    or without an Accept header; None when the client accepts neither."""
    if not accept.strip():
        return GRAPHQL_RESPONSE
    ranges = [_media_range(part) for part in accept.split(",")]
    best, best_quality = None, 0.0
    for candidate in (GRAPHQL_RESPONSE, JSON):
        quality = _quality(candidate, ranges)
        if quality > best_quality:
            best, best_quality = candidate, quality
    return best


def _media_range(text: str) -> tuple[str, float]:
    kind, *params = (part.strip() for part in text.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return kind.lower(), quality


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> float:
    """The quality of the most specific range that matches, as RFC 9110 says."""
    patterns = {media_type: 3, media_type.split("/")[0] + "/*": 2, "*/*": 1}
    matches = [(patterns[kind], quality) for kind, quality in ranges if kind in patterns]
    return max(matches)[1] if matches else 0.0


def _render(result: ExecutionResult, media_type: str) -> Response:
    body: dict[str, Any] = {}
    errors = result.errors or []
    executed = result.data is not None or any(error.path is not None for error in errors)
    if errors:
        body["errors"] = [_formatted(error) for error in errors]
    if executed:
        body["data"] = result.data
    return _response(body, _status(result, executed, media_type), media_type)


def _formatted(error: GraphQLError) -> dict[str, Any]:
    """The error as JSON, with a code for request errors that were raised without one."""
    formatted: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", _request_error_code(error))
    formatted["extensions"] = extensions
    return formatted


def _request_error_code(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    return "GRAPHQL_VALIDATION_FAILED"


def _status(result: ExecutionResult, executed: bool, media_type: str) -> int:
    codes = {
        (error.extensions or {}).get("code") or _request_error_code(error)
        for error in result.errors or []
    }
    for code, status in _STATUS_BY_CODE.items():
        if code in codes and result.data is None:
            return status
    # A request error (syntax, validation, variables) is a 400 with the GraphQL media type
    # and, for clients that only know JSON, a 200, as the GraphQL-over-HTTP draft says.
    if media_type == JSON or executed:
        return 200
    return 400


def graphql_error_body(message: str) -> bytes:
    """A request refused before it reached the endpoint (a 413), as a GraphQL response."""
    return orjson.dumps(
        {"errors": [{"message": message, "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}
    )


def _app_error(error: AppError, media_type: str) -> Response:
    headers = {}
    if isinstance(error, RetryLater):
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    formatted = GraphQLError(error.message, extensions={"code": error.code}).formatted
    return _response({"errors": [formatted]}, error.status, media_type, headers)


def _request_error(
    message: str, status: int, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    formatted = GraphQLError(message, extensions={"code": "BAD_REQUEST"}).formatted
    return _response({"errors": [formatted]}, status, media_type, headers)


def _response(
    body: dict[str, Any], status: int, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    response = Response(orjson.dumps(body), status_code=status, media_type=media_type)
    response.headers.update(headers or {})
    if status == 401 and "www-authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        response.headers.setdefault("Retry-After", "2")
    return response


# The streaming door (schema/streams.py) refuses requests the way this endpoint does.
error_response = _app_error
request_error_response = _request_error
