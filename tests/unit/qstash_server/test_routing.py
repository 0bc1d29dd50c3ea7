"""The API's routes, resolved from the raw request target (pure)."""

from __future__ import annotations

import pytest

from qstash_server import app, model


@pytest.mark.parametrize(
    ("method", "target", "route"),
    [
        pytest.param("GET", "/v2/schedules", app.Route(app.SCHEDULES_LIST), id="list"),
        pytest.param("GET", "/v2/schedules/", app.Route(app.SCHEDULES_LIST), id="list slash"),
        pytest.param("GET", "/v2/schedules/a.b-c", app.Route(app.SCHEDULES_GET, "a.b-c"), id="get"),
        pytest.param(
            "GET", "/v2/Schedules/x", app.Route(app.SCHEDULES_GET, "x"), id="go sdk casing"
        ),
        pytest.param(
            "GET", "/v2/schedules/a%2Eb", app.Route(app.SCHEDULES_GET, "a.b"), id="decoded id"
        ),
        pytest.param(
            "DELETE", "/v2/schedules/x", app.Route(app.SCHEDULES_DELETE, "x"), id="delete"
        ),
        pytest.param(
            "PATCH", "/v2/schedules/x/pause", app.Route(app.SCHEDULES_PAUSE, "x"), id="pause patch"
        ),
        pytest.param(
            "POST", "/v2/schedules/x/pause", app.Route(app.SCHEDULES_PAUSE, "x"), id="pause post"
        ),
        pytest.param(
            "PATCH", "/v2/schedules/x/resume", app.Route(app.SCHEDULES_RESUME, "x"), id="resume"
        ),
        pytest.param(
            "POST",
            "/v2/schedules/https://e.com/a//b?x=1&y=2",
            app.Route(app.SCHEDULES_CREATE, "https://e.com/a//b?x=1&y=2"),
            id="create keeps raw destination",
        ),
        pytest.param(
            "POST",
            "/v2/schedules/https://e.com/pause",
            app.Route(app.SCHEDULES_CREATE, "https://e.com/pause"),
            id="a URL ending in pause is a destination",
        ),
        pytest.param(
            "POST", "/v2/publish/http://h/p?q", app.Route(app.PUBLISH, "http://h/p?q"), id="publish"
        ),
        pytest.param(
            "GET", "/v2/messages/msg_1", app.Route(app.MESSAGES_GET, "msg_1"), id="message"
        ),
        pytest.param(
            "DELETE", "/v2/messages/msg_1", app.Route(app.MESSAGES_CANCEL, "msg_1"), id="cancel"
        ),
        pytest.param("GET", "/v2/keys", app.Route(app.KEYS_GET), id="keys"),
        pytest.param("POST", "/v2/keys/rotate", app.Route(app.KEYS_ROTATE), id="rotate"),
    ],
)
def test_resolve(method: str, target: str, route: app.Route) -> None:
    assert app.resolve(method, target) == route


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        pytest.param("DELETE", "/v2/schedules", 405, id="delete all"),
        pytest.param("PUT", "/v2/schedules/x", 405, id="put"),
        pytest.param("GET", "/v2/schedules/x/y", 404, id="nested"),
        pytest.param("GET", "/v2/publish/http://h", 405, id="get publish"),
        pytest.param("GET", "/v1/schedules", 404, id="v1"),
        pytest.param("GET", "/", 404, id="root"),
        pytest.param("POST", "/v2/keys", 405, id="post keys"),
    ],
)
def test_resolve_refuses(method: str, target: str, status: int) -> None:
    with pytest.raises(model.ApiError) as caught:
        app.resolve(method, target)
    assert caught.value.status == status
