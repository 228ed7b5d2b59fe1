"""`GET /ui/`: the usage page, and its assets, all served by the gateway itself.

The page is static (HTML, one script, one style sheet and the vendored Chart.js, see
`gateway/ui/static/vendor/README.md`): it signs in with a key kept in the tab's session
storage and reads the same JSON as any client (`/v1/usage`, `/v1/admin/...`), so it adds
no second data path and no server-side session. The files are read once, at start.

Every answer carries a strict Content-Security-Policy: scripts and styles only from this
origin (no inline script, so an injected `<script>` does not run), requests only to this
origin, no framing. The HTML holds no data and no key: it is the same for everyone.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

__all__ = ["CSP", "UI_PUBLIC_PATHS", "ui_routes"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_FILES = {
    "/ui/": ("index.html", "text/html; charset=utf-8"),
    "/ui/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/ui/static/vendor/chart.umd.js": ("vendor/chart.umd.js", "text/javascript; charset=utf-8"),
}

UI_PUBLIC_PATHS = frozenset({"/ui", *_FILES})

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files("gateway.ui").joinpath("static", name).read_bytes()


async def _to_page(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=308)


def ui_routes() -> list[Route]:
    routes = [Route("/ui", _to_page, methods=["GET"])]
    for path, (name, media_type) in _FILES.items():
        body = _read(name)

        async def serve(
            request: Request, body: bytes = body, media_type: str = media_type
        ) -> Response:
            return Response(body, media_type=media_type, headers=_HEADERS)

        routes.append(Route(path, serve, methods=["GET"]))
    return routes
