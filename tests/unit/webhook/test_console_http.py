"""The console's HTTP surface up to the first API call: files, headers, sign-in refusals.

What needs a real API server (TokenReview, RBAC, Jobs) is driven in a real browser against the
real stack in ``tests/e2e/test_console.py``; here the adapter's transport fails the test if
touched, so everything checked is decided before any Kubernetes call.
"""

from __future__ import annotations

import fnmatch
import gzip
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from qstash_webhook.console import views
from tests.unit.webhook import support
from tests.unit.webhook.conftest import MakeClient

STATIC = resources.files("qstash_webhook.console").joinpath("static")

PAGES = ["/ui/", "/ui/app.js", "/ui/app.css", "/ui/icon.svg"]
API = [
    ("GET", "/ui/api/session"),
    ("GET", "/ui/api/cronworkflows"),
    ("GET", "/ui/api/cronworkflows/team-a/report"),
    ("POST", "/ui/api/cronworkflows/team-a/report/activate"),
    ("POST", "/ui/api/cronworkflows/team-a/report/deactivate"),
    ("POST", "/ui/api/cronworkflows/team-a/report/run"),
]


def assert_console_headers(headers: object) -> None:
    get = headers.get  # type: ignore[attr-defined]
    policy = get("Content-Security-Policy", "")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert get("X-Content-Type-Options") == "nosniff"
    assert get("Referrer-Policy") == "no-referrer"
    assert get("X-Frame-Options") == "DENY"
    assert "Set-Cookie" not in headers  # type: ignore[operator]
    assert "Access-Control-Allow-Origin" not in headers  # type: ignore[operator]


@pytest.mark.parametrize("path", PAGES)
async def test_the_page_is_served_from_the_package_with_strict_headers(
    make_client: MakeClient, path: str
) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status == 200
    assert_console_headers(response.headers)
    name = path.rsplit("/", 1)[1] or "index.html"
    assert await response.read() == STATIC.joinpath(name).read_bytes()
    assert response.headers["Content-Type"].startswith(views.ASSETS[name].split(";")[0])


async def test_files_are_sent_gzipped_and_revalidated_by_etag(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get(
        "/ui/app.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    raw = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == STATIC.joinpath("app.js").read_bytes()
    again = await client.get("/ui/app.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    assert_console_headers(again.headers)


@pytest.mark.parametrize(("method", "path"), API)
async def test_no_token_no_answer_and_still_the_headers(
    make_client: MakeClient, method: str, path: str
) -> None:
    client = await make_client()
    response = await client.request(method, path)
    assert response.status == 401
    assert (await response.json())["reason"] == "Unauthenticated"
    assert_console_headers(response.headers)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "cookie",
    ["token=abc", "session=eyJhbGciOi", "Authorization=Bearer abc"],
)
async def test_a_cookie_is_no_credential(make_client: MakeClient, cookie: str) -> None:
    """CSRF has nothing to ride on: only the Authorization header authenticates."""
    client = await make_client()
    response = await client.get("/ui/api/cronworkflows", headers={"Cookie": cookie})
    assert response.status == 401


@pytest.mark.parametrize(
    "path",
    ["/ui/api/cronworkflows/Team_A/report", "/ui/api/cronworkflows/team-a/Report!"],
)
async def test_bad_names_are_400_before_any_api_call(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    response = await client.get(path, headers={"Authorization": "Bearer x"})
    assert response.status == 400
    assert_console_headers(response.headers)


async def test_the_bare_prefix_redirects_and_unknown_paths_are_404(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    redirect = await client.get("/ui", allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (308, "/ui/")
    assert_console_headers(redirect.headers)
    missing = await client.get("/ui/../app.py")
    assert missing.status == 404
    for path in ("/ui/static/app.js", "/ui/viewmodel.py", "/ui/static/../views.py"):
        response = await client.get(path)
        assert response.status == 404, path
        assert_console_headers(response.headers)
    # A path that climbs out of /ui/ is normalised out of it: not the console's, still nothing.
    assert (await client.get("/ui/%2e%2e/app.py")).status == 404


async def test_the_console_can_be_turned_off(make_client: MakeClient) -> None:
    client = await make_client(settings=support.settings(ui_enabled=False))
    for path in ["/ui/", "/ui/app.js", "/ui/api/session"]:
        assert (await client.get(path)).status == 404
    # The seed's API stays.
    assert (await client.get("/api/cron")).status == 401


def test_no_inline_script_or_style_and_no_string_to_markup() -> None:
    """What the CSP forbids is also absent from the files (a CSP violation would break the page,
    so the browser test would catch it too; this says where)."""
    html = STATIC.joinpath("index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    code = STATIC.joinpath("app.js").read_text().splitlines()
    script = "\n".join(line for line in code if not line.lstrip().startswith("//"))
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
    assert "localStorage" not in script
    assert "document.cookie" not in script


def test_the_wheel_and_the_image_carry_the_page() -> None:
    """The files are package data: pyproject's globs must cover each one the views serve."""
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    patterns = globs["qstash_webhook"]
    for name in views.ASSETS:
        assert any(fnmatch.fnmatch(f"console/static/{name}", p) for p in patterns), name
