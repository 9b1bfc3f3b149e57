"""/api/docs: Swagger UI for the REST routes, its assets from the same base URL as GraphiQL."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from rest_compat.openapi import SECURITY_SCHEME

# Loaded as `{assets_url}/swagger-ui-dist@{version}/{file}`, like GraphiQL's packages.
SWAGGER_UI_PACKAGE: Final = ("swagger-ui-dist", "5.17.14")
# Where a development page carries its token: an attribute is escaped like any other, so no
# token can break out of it, and the inline script stays the same on every page.
TOKEN_META: Final = "taskql-development-token"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  {token_meta}<title>taskql REST API</title>
  <link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{base}/swagger-ui-bundle.js"></script>
  <script>
    // The document declares bearer security: "Authorize" takes a token, "Try it out" sends it.
    // A development page brings one for the development user, as GraphiQL does.
    const token = document.querySelector('meta[name="{meta_name}"]')?.content;
    window.ui = SwaggerUIBundle({{
      url: "/api/openapi.json",
      dom_id: "#swagger-ui",
      onComplete: () => {{
        if (token) window.ui.preauthorizeApiKey("{scheme}", token);
      }},
    }});
  </script>
</body>
</html>
"""


def routes(assets_url: str, development_token: Callable[[], str] | None = None) -> list[Route]:
    """The page; with `development_token` (development only), each view is pre-authorised."""
    name, version = SWAGGER_UI_PACKAGE

    def page(token_meta: str) -> str:
        return _PAGE.format(
            base=html.escape(f"{assets_url.rstrip('/')}/{name}@{version}"),
            token_meta=token_meta,
            meta_name=TOKEN_META,
            scheme=SECURITY_SCHEME,
        )

    anonymous = page("")

    async def serve(request: Request) -> Response:
        if development_token is None:
            return HTMLResponse(anonymous)
        # Signed per view, so the page never offers an expired token.
        meta = f'<meta name="{TOKEN_META}" content="{html.escape(development_token())}">\n  '
        return HTMLResponse(page(meta))

    return [Route("/api/docs", serve, methods=["GET"])]
