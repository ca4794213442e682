"""GET /: the web page, and its static files under /web/ (model/web/: plain HTML, CSS and
JavaScript inside the package; no CDN, no build step, works offline).

The page talks to the routes in http_videos.py (keep a video, show frame i in decode order, try
prompts on one frame) and to POST /track?video_id=...&format=rle, whose NDJSON lines it draws as
they arrive. Registered before KServe's own routes, so `/` is the page, not KServe's
{"status": "alive"} (liveness is /v2/health/live).
"""

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles


def web_dir() -> str:
    return str(resources.files("model") / "web")


def add_page_routes(app: FastAPI) -> None:
    folder = web_dir()

    async def page():
        """The web page: open a video, click, track, watch, download."""
        # no-cache: a new release's page is fetched again (it is 3 small files).
        return FileResponse(f"{folder}/index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/web", StaticFiles(directory=folder), name="web")
