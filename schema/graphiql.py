"""Our GraphiQL page: pinned assets from a configurable base URL, the headers editor open."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# npm packages the page loads, as `{assets_url}/{name}@{version}/{file}` (the layout of the npm
# CDNs, and of a directory where each package is unpacked into `name@version/`).
GRAPHIQL_PACKAGES: Final = {"react": "18.3.1", "react-dom": "18.3.1", "graphiql": "3.8.3"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>taskql GraphiQL</title>
  <link rel="stylesheet" href="{graphiql}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL from {assets_url}</div>
  <script src="{react}/umd/react.production.min.js"></script>
  <script src="{react_dom}/umd/react-dom.production.min.js"></script>
  <script src="{graphiql}/graphiql.min.js"></script>
  <script>
    const config = {config};
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher: GraphiQL.createFetcher({{ url: window.location.pathname }}),
        defaultHeaders: config.headers,
        defaultEditorToolsVisibility: "headers",
        shouldPersistHeaders: false,
      }})
    );
  </script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class GraphiQL:
    """The page's asset base URL and, in development, the headers to prefill."""

    assets_url: str
    # Called per page view, so a prefilled development token is always fresh.
    default_headers: Callable[[], dict[str, str]] | None = None

    def html(self) -> str:
        headers = self.default_headers() if self.default_headers is not None else None
        config = {"headers": json.dumps(headers, indent=2) if headers else None}
        base = self.assets_url.rstrip("/")
        urls = {name: f"{base}/{name}@{version}" for name, version in GRAPHIQL_PACKAGES.items()}
        return _PAGE.format(
            assets_url=html.escape(base),
            react=html.escape(urls["react"]),
            react_dom=html.escape(urls["react-dom"]),
            graphiql=html.escape(urls["graphiql"]),
            config=_script_json(config),
        )


def _script_json(value: object) -> str:
    """JSON that is safe inside a <script> element: no `</script>` or `<!--` can form."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
