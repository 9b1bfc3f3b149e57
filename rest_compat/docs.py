"""/api/docs: Swagger UI for the REST routes, its assets from the same base URL as GraphiQL."""

from __future__ import annotations

import html
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

# Loaded as `{assets_url}/swagger-ui-dist@{version}/{file}`, like GraphiQL's packages.
SWAGGER_UI_PACKAGE: Final = ("swagger-ui-dist", "5.17.14")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>taskql REST API</title>
  <link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{base}/swagger-ui-bundle.js"></script>
  <script>
    // The document declares bearer security: "Authorize" takes a token, "Try it out" sends it.
    window.ui = SwaggerUIBundle({{ url: "/api/openapi.json", dom_id: "#swagger-ui" }});
  </script>
</body>
</html>
"""


def routes(assets_url: str) -> list[Route]:
    name, version = SWAGGER_UI_PACKAGE
    page = _PAGE.format(base=html.escape(f"{assets_url.rstrip('/')}/{name}@{version}"))

    async def serve(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/api/docs", serve, methods=["GET"])]
