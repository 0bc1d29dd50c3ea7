"""Public URL checks: the seed's "resolves to a loopback address" caught before QStash says it."""

from __future__ import annotations

import pytest

from qstash_operator.domain.urls import check_public_url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://cron.example.com", id="a public https origin"),
        pytest.param("https://cron.example.com:8443", id="with a port"),
        pytest.param("https://93.184.216.34", id="a public address"),
        pytest.param("https://cron.example.com/prefix", id="with a path prefix"),
    ],
)
def test_reachable(url: str) -> None:
    assert check_public_url(url) is None


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        pytest.param("http://cron.example.com", "not https", id="plain http"),
        pytest.param("https://localhost:3000", "loopback", id="localhost"),
        pytest.param("https://127.0.0.1", "loopback", id="loopback address"),
        pytest.param("https://[::1]", "loopback", id="loopback v6"),
        pytest.param("https://10.1.2.3", "private", id="private range"),
        pytest.param("https://192.168.1.10", "private", id="home network"),
        pytest.param("https://169.254.169.254", "link-local", id="link-local metadata address"),
        pytest.param("https://webhook.default.svc", "private", id="a cluster service name"),
        pytest.param(
            "https://webhook.default.svc.cluster.local", "private", id="a cluster dns name"
        ),
        pytest.param("https://webhook", "single-label", id="a bare host name"),
        pytest.param("https://cron.example.com?x=1", "query", id="with a query"),
        pytest.param("ftp://cron.example.com", "not an http", id="wrong scheme"),
        pytest.param("https://cron.example.com:99999", "cannot be parsed", id="bad port"),
    ],
)
def test_refused_with_the_fix(url: str, phrase: str) -> None:
    problem = check_public_url(url)
    assert problem is not None
    assert phrase in problem
    assert "WEBHOOK_PUBLIC_URL" in problem


def test_local_stacks_may_allow_private_urls() -> None:
    assert check_public_url("http://127.0.0.1:8000", allow_private=True) is None
    assert check_public_url("ftp://127.0.0.1", allow_private=True) is not None
