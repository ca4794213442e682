"""Fast tier: the web page's files, as the server serves them. The page itself runs in a real
browser in test_page.py (slow tier); here: `/` is the page, every file it loads is served, nothing
is fetched from another host (it works offline), and every route it calls exists."""

import os
import re

import pytest
from fastapi.testclient import TestClient

from model.http_page import web_dir
from support.inprocess import build
from support.metrics import metric

WEB = web_dir()
FILES = sorted(os.listdir(WEB))
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app, model, _ = build(tmp_path_factory.mktemp("page"))
    with TestClient(app) as c:
        yield c, app
    model.store.close()


def read(name):
    with open(os.path.join(WEB, name), encoding="utf-8") as f:
        return f.read()


def test_root_is_the_page_not_kserves_liveness(client):
    c, _ = client
    r = c.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/page.js">' in r.text
    assert 'href="/web/page.css"' in r.text


@pytest.mark.parametrize("name", FILES)
def test_every_file_is_served_with_its_type(client, name):
    c, _ = client
    r = c.get(f"/web/{name}")
    assert r.status_code == 200, name
    assert r.headers["content-type"].startswith(TYPES[os.path.splitext(name)[1]]), r.headers
    assert r.text == read(name)


def test_the_page_loads_only_its_own_files():
    """No CDN, no other host: a page on an air-gapped cluster works."""
    for name in FILES:
        text = read(name)
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
    html = read("index.html")
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("/web/") and ref[len("/web/"):] in FILES, ref
    for name in (n for n in FILES if n.endswith(".js")):
        for module in re.findall(r"from '([^']+)'", read(name)):
            assert module.startswith("./") and module[2:] in FILES, (name, module)


def test_every_route_the_page_calls_exists(client):
    _, app = client
    routes = {(m, r.path) for r in app.routes for m in getattr(r, "methods", ()) or ()}
    calls = set()
    script = read("server.js")
    for url, method in re.findall(r"fetch\(`([^`?]+)[^`]*`(?:, \{ method: '(\w+)')?", script):
        calls.add((method or "GET", re.sub(r"\$\{[^}]+\}", "{}", url)))
    calls.add(("POST", "/videos"))  # the XMLHttpRequest upload
    assert {("GET", "/videos/{}/frames/{}"), ("POST", "/videos/{}/segment"),
            ("POST", "/track")} <= calls, calls
    for method, path in calls:
        pattern = re.sub(r"\{\}", "[^/]+", path)
        assert any(m == method and re.fullmatch(pattern, re.sub(r"\{[^}]+\}", "x", p))
                   for m, p in routes), (method, path)


def test_the_page_is_not_counted_as_a_tracking_request(client):
    c, _ = client
    before = metric(c.get("/metrics").text, "sam2_tracker_requests_total")
    for path in ["/", *(f"/web/{n}" for n in FILES)]:
        assert c.get(path).status_code == 200
    assert metric(c.get("/metrics").text, "sam2_tracker_requests_total") == before
