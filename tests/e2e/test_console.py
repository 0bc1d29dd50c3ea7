"""The web console in a real browser against the real stack: control plane, operator, webhook.

Headless Chromium (Debian's package, driven by Playwright; ``qstash_devstack.browser``) signs in
with real ServiceAccount tokens that the API server reviews, reads the examples the operator made
Ready, and presses the buttons; every effect is checked with kubectl, not with the page. People:

- ``editor``: bound in the namespace to the built-in ``edit`` role, into which the chart's
  aggregated ClusterRoles add CronWorkflows and the custom verb ``trigger`` (as on a real cluster);
- ``viewer``: bound to the built-in ``view`` role only;
- ``fickle``: bound to ``edit`` until the test takes it away mid-page (a 403 from RBAC, in words).

The main path is driven with the keyboard only (Tab, typing, Enter), and the order Tab visits the
controls is checked. Screenshots go to the test's output folder; with
``QSTASH_CONSOLE_SCREENSHOTS=docs`` the list and detail shots are also written there (how the
README's pictures are made: see the README's "Web console" section).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from qstash_devstack.browser import chromium
from qstash_devstack.processes import Child
from qstash_devstack.stack import Stack, wait
from qstash_operator.settings import DEFAULT_API_AUDIENCE
from qstash_webhook.access import REVIEW_CACHE_SECONDS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_COUNT = sum(
    len(re.findall(r"^kind: CronWorkflow$", path.read_text(), re.M))
    for path in EXAMPLES.glob("*.yaml")
)
"""How many CronWorkflows applying examples/ makes (the list shows them all)."""
CHART = REPO / "charts" / "qstash-operator"
EXAMPLE_NAMES = ("every-minute", "inventory-sync", "nightly-report", "quarterly-cleanup", "reindex")
SUSPENDED = {"quarterly-cleanup", "reindex"}
TOKEN_KEY = "qstash-operator.token"
LONG_RUN = "600s"  # kwok keeps inventory-sync's pod Running this long: Forbid has a live Job


@dataclass
class Console:
    stack: Stack
    url: str
    webhook: Child
    editor: str
    viewer: str

    def token(self, account: str, role: str) -> str:
        ns = self.stack.namespace
        self.stack.plane.kubectl(
            "apply",
            "-f",
            "-",
            input=f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {account}-{role}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {ns}}}]
""",
        )
        return self.stack.plane.create_service_account_token(
            ns, account, audience=DEFAULT_API_AUDIENCE
        )

    def can(self, account: str, verb: str, resource: str) -> bool:
        result = self.stack.plane.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            self.stack.namespace,
            f"--as=system:serviceaccount:{self.stack.namespace}:{account}",
            check=False,
        )
        return result.stdout.strip() == "yes"

    def suspended(self, name: str) -> bool:
        body = self.stack.get("cronworkflow", name) or {}
        return bool(body["spec"].get("suspend"))


def aggregate_chart_roles(stack: Stack) -> None:
    """The chart's people-facing ClusterRoles (CronWorkflows into view/edit/admin), as a real
    install adds them; the cluster's aggregation controller folds them into the built-ins."""
    rendered = stack.plane.helm(
        "template", "console", str(CHART), "--show-only", "templates/user-rbac.yaml"
    ).stdout
    stack.plane.kubectl("apply", "-f", "-", input=rendered)


@pytest.fixture
def console(stack: Stack) -> Console:
    stack.operator()
    webhook = stack.webhook()
    aggregate_chart_roles(stack)
    stack.plane.kubectl("apply", "-n", stack.namespace, "-f", str(EXAMPLES))
    stack.plane.kubectl(
        "patch",
        "qcwf",
        "inventory-sync",
        "-n",
        stack.namespace,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "metadata": {
                                    "annotations": {"kwok.qstash-operator.dev/run-for": LONG_RUN}
                                }
                            }
                        }
                    }
                }
            }
        ),
    )
    for name in EXAMPLE_NAMES:
        reason = "Suspended" if name in SUSPENDED else "Ready"
        stack.wait_condition(name, "Ready", "True", reason=reason, timeout=60)
    made = Console(stack, f"{stack.public_url}/ui/", webhook, editor="", viewer="")
    made.editor = made.token("editor", "edit")
    made.viewer = made.token("viewer", "view")
    wait(
        lambda: (
            made.can("editor", "trigger", "cronworkflows.qstash-operator.dev")
            and made.can("viewer", "list", "cronworkflows.qstash-operator.dev")
        ),
        timeout=60,
        what="the chart's roles aggregated into edit and view",
    )
    return made


@pytest.fixture
def browser() -> Iterator[BrowserContext]:
    with chromium() as context:
        yield context


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    target = os.environ.get("QSTASH_CONSOLE_SCREENSHOTS")
    if target:
        for name in ("console-list.png", "console-detail.png"):
            if (folder / name).exists():
                Path(target).mkdir(parents=True, exist_ok=True)
                shutil.copy(folder / name, Path(target) / name)


def watch_page(page: Page) -> list[str]:
    """Console messages and page errors: a CSP violation ("Refused to ...") or a script error
    shows up here. Chromium also logs every 4xx answer; those the test asks for are not
    problems."""
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and "Failed to load resource" not in message.text:
            problems.append(message.text)

    page.on("console", note)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def focused(page: Page) -> str:
    """What has keyboard focus, as a person would name it: its label, or its text."""
    return str(
        page.evaluate(
            """() => {
              const e = document.activeElement;
              if (!e || e === document.body) return "(body)";
              const label = e.labels && e.labels.length ? e.labels[0].textContent : "";
              return `${e.tagName.toLowerCase()}:${(label || e.textContent || e.id).trim()}`;
            }"""
        )
    )


def tab_through(page: Page, count: int) -> list[str]:
    visited = []
    for _ in range(count):
        page.keyboard.press("Tab")
        visited.append(focused(page))
    return visited


def tab_until(page: Page, wanted: str, limit: int = 60) -> list[str]:
    """Press Tab until ``wanted`` has focus (and fail if it never does): keyboard-only use."""
    visited = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        visited.append(focused(page))
        if visited[-1] == wanted:
            return visited
    raise AssertionError(f"Tab never reached {wanted!r}; it visited {visited}")


def unlabelled_controls(page: Page) -> list[str]:
    """Every input, select and button needs a name a screen reader can say."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
              .filter((e) => {
                const label = e.labels && [...e.labels].some((l) => l.textContent.trim());
                const text = (e.textContent || '').trim() || e.getAttribute('aria-label');
                return !(label || (e.tagName === 'BUTTON' && text));
              })
              .map((e) => e.outerHTML.slice(0, 80))"""
        )
    )


def sign_in_by_keyboard(page: Page, url: str, token: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert focused(page) == "input:Kubernetes bearer token"
    page.keyboard.insert_text(token)
    page.keyboard.press("Enter")


def session_status(console: Console, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{console.url}api/session", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def job_names(stack: Stack, name: str) -> set[str]:
    return {
        job["metadata"]["name"]
        for job in stack.list("jobs", f"qstash-operator.dev/cronworkflow={name}")
    }


def test_the_main_path_by_keyboard(console: Console, browser: BrowserContext, shots: Path) -> None:
    stack = console.stack
    page = browser.new_page()
    problems = watch_page(page)

    # Sign in: the token goes to this tab's sessionStorage, nowhere else.
    sign_in_by_keyboard(page, console.url, console.editor)
    table = page.locator("#cronworkflows")
    expect(table).to_be_visible()
    for name in EXAMPLE_NAMES:
        expect(table.locator(f"tr[data-name='{stack.namespace}/{name}']")).to_be_visible()
    expect(page.locator("#count")).to_have_text(
        f"{EXAMPLE_COUNT} of {EXAMPLE_COUNT} CronWorkflows shown"
    )
    expect(page.locator("#who")).to_have_text(
        f"Signed in as system:serviceaccount:{stack.namespace}:editor"
    )
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == console.editor
    assert page.evaluate("localStorage.length") == 0
    assert browser.cookies() == []
    assert console.editor not in page.url
    row = table.locator(f"tr[data-name='{stack.namespace}/nightly-report']")
    expect(row).to_contain_text("30 6 * * *")
    expect(row).to_contain_text("At 06:30")
    expect(row).to_contain_text("Europe/Berlin")
    expect(row).to_contain_text("QStash")
    expect(row).to_contain_text("Ready")
    expect(row).to_contain_text("CET")  # next run in the zone...
    expect(row).to_contain_text("UTC")  # ...and in UTC
    assert unlabelled_controls(page) == []
    page.screenshot(path=str(shots / "console-list.png"), full_page=True)

    # The list's tab order: skip link, brand, sign out, namespace, search, then the rows.
    assert focused(page) == "h1:CronWorkflows"  # where a screen reader starts reading
    page.locator("a.skip").focus()  # the first focusable element, as after a fresh load
    assert tab_through(page, 5) == [
        "a:qstash-operator",
        "button:Sign out",
        "select:Namespace",
        "input:Search",
        "a:every-minute",
    ]
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("nightly-report")
    expect(page.locator("#count")).to_have_text(f"1 of {EXAMPLE_COUNT} CronWorkflows shown")
    page.keyboard.press("Tab")
    assert focused(page) == "a:nightly-report"  # hidden rows take no focus
    page.keyboard.press("Enter")

    # The detail page.
    expect(page.get_by_role("heading", name=f"{stack.namespace}/nightly-report")).to_be_visible()
    expect(page.locator("#words")).to_contain_text("At 06:30, Europe/Berlin time")
    expect(page.locator("#words")).to_contain_text("startingDeadlineSeconds 600")
    expect(page.locator("#fire-times tbody tr")).to_have_count(10)
    expect(page.locator("#fire-times tbody tr").first).to_contain_text("06:30:00 CET")
    expect(page.locator("#conditions")).to_contain_text("Ready")
    expect(page.locator("#activate")).to_be_disabled()  # already active
    expect(page.locator("#activate-why")).to_have_text("already active")
    assert unlabelled_controls(page) == []
    # From the heading, Tab visits the working controls in reading order (the disabled
    # Activate button takes no focus).
    assert focused(page) == "h1:" + f"{stack.namespace}/nightly-report"
    assert tab_through(page, 3) == [
        "button:Deactivate",
        "input:Reason for a manual run",
        "button:Run now",
    ]

    # Deactivate, by keyboard: spec.suspend becomes true, as kubectl sees it.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "button:Deactivate"
    page.keyboard.press("Enter")
    expect(page.locator("#action-result")).to_have_text("Deactivated: spec.suspend is true.")
    wait(lambda: console.suspended("nightly-report"), what="spec.suspend true")
    expect(page.locator("#deactivate-why")).to_have_text("already suspended")

    # Activate: back to false.
    tab_until(page, "button:Activate")
    page.keyboard.press("Enter")
    expect(page.locator("#action-result")).to_have_text("Activated: spec.suspend is false.")
    wait(lambda: not console.suspended("nightly-report"), what="spec.suspend false")

    # Run now with a reason: the Job appears, and the reason is on record.
    before = job_names(stack, "nightly-report")
    tab_until(page, "input:Reason for a manual run")
    page.keyboard.type("re-run after the data fix")
    page.keyboard.press("Enter")
    expect(page.locator("#action-result")).to_contain_text("Started Job nightly-report-manual-")
    started = page.locator("#action-result").inner_text().split("Started Job ")[1].split(" ")[0]
    wait(lambda: started in job_names(stack, "nightly-report"), what=f"Job {started}")
    assert job_names(stack, "nightly-report") - before == {started}
    expect(page.locator("#jobs")).to_contain_text(started)
    expect(page.locator("#timeline li.manual")).to_have_count(1)
    wait(
        lambda: any(
            "re-run after the data fix" in e.get("message", "")
            for e in stack.events("nightly-report")
        ),
        what="the reason recorded as an event",
    )
    page.reload()
    expect(page.locator("#events")).to_contain_text("re-run after the data fix")
    page.screenshot(path=str(shots / "console-detail.png"), full_page=True)

    # Forbid: a second run while the first is active is refused, in words (409).
    page.goto(f"{console.url}#/cronworkflows/{stack.namespace}/inventory-sync")
    expect(page.get_by_role("heading", name=f"{stack.namespace}/inventory-sync")).to_be_visible()
    for attempt in ("first", "second"):
        page.get_by_label("Reason for a manual run").fill(f"{attempt} sync")
        page.get_by_role("button", name="Run now").click()
        result = page.locator("#action-result")
        if attempt == "first":
            expect(result).to_contain_text("Started Job inventory-sync-manual-")
    expect(page.locator("#action-result")).to_contain_text(
        "Not run: concurrencyPolicy is Forbid and inventory-sync-manual-"
    )
    expect(page.locator("#action-result")).to_contain_text("is still active")
    assert len(job_names(stack, "inventory-sync")) == 1

    assert problems == []
    assert console.editor not in console.webhook.output(), "the token reached a log line"


def test_view_only_wrong_tokens_and_rbac_refusals(
    console: Console, browser: BrowserContext
) -> None:
    stack = console.stack
    page = browser.new_page()
    problems = watch_page(page)

    # A wrong token is refused, readably, and kept nowhere.
    sign_in_by_keyboard(page, console.url, "not-a-kubernetes-token")
    expect(page.locator("#sign-in-error")).to_have_text(
        f"Token refused: the token is not valid for audience '{DEFAULT_API_AUDIENCE}': make one "
        f"with kubectl create token <serviceaccount> --audience {DEFAULT_API_AUDIENCE}."
    )
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None

    # view: sees everything, may press nothing, and is told why.
    page.get_by_label("Kubernetes bearer token").fill(console.viewer)
    page.keyboard.press("Enter")
    expect(page.locator("#count")).to_have_text(
        f"{EXAMPLE_COUNT} of {EXAMPLE_COUNT} CronWorkflows shown"
    )
    page.get_by_role("link", name="nightly-report").click()
    expect(page.get_by_role("heading", name=f"{stack.namespace}/nightly-report")).to_be_visible()
    expect(page.locator("#jobs, #h-jobs ~ p").first).to_be_visible()
    who = f"system:serviceaccount:{stack.namespace}:viewer"
    for button, verb in (("activate", "patch"), ("deactivate", "patch"), ("run", "trigger")):
        expect(page.locator(f"#{button}")).to_be_disabled()
        expect(page.locator(f"#{button}-why")).to_have_text(
            f"{who} may not {verb} cronworkflows.qstash-operator.dev/nightly-report in namespace "
            f"{stack.namespace} (no Role or ClusterRole bound to them grants {verb!r})"
        )
        assert page.locator(f"#{button}").get_attribute("aria-describedby") == f"{button}-why"
    expect(page.get_by_label("Reason for a manual run")).to_be_disabled()

    # RBAC changes under an open page: the click is refused with RBAC's words (403).
    fickle = console.token("fickle", "edit")
    page.evaluate(f"sessionStorage.setItem('{TOKEN_KEY}', {json.dumps(fickle)})")
    page.reload()
    expect(page.locator("#deactivate")).to_be_enabled()
    stack.plane.kubectl("delete", "rolebinding", "fickle-edit", "-n", stack.namespace)
    wait(
        lambda: not console.can("fickle", "patch", "cronworkflows.qstash-operator.dev"),
        what="unbound",
    )
    page.locator("#deactivate").click()
    expect(page.locator("#action-result")).to_have_text(
        f"Not allowed: system:serviceaccount:{stack.namespace}:fickle may not patch "
        f"cronworkflows.qstash-operator.dev/nightly-report in namespace {stack.namespace} "
        "(no Role or ClusterRole bound to them grants 'patch')"
    )
    assert not console.suspended("nightly-report")

    # A token that expires or is revoked mid-session signs the tab out with the reason (once the
    # webhook's cache of successful reviews has let it go).
    stack.plane.kubectl("delete", "serviceaccount", "fickle", "-n", stack.namespace)
    wait(
        lambda: session_status(console, fickle) == 401,
        timeout=REVIEW_CACHE_SECONDS + 15,
        what="the API server to drop the token",
    )
    page.get_by_role("link", name="← All CronWorkflows").click()
    expect(page.locator("#sign-in-error")).to_contain_text("Signed out:")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None

    assert problems == [], problems
    for token in (console.viewer, fickle):
        assert token not in console.webhook.output()


def test_console_is_absent_when_turned_off(stack: Stack) -> None:
    webhook = stack.webhook(extra_env={"QSTASH_WEBHOOK_UI": "false"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.public_url}/ui/", timeout=10)  # noqa: S310 (loopback)
    assert refused.value.code == 404
    assert webhook.running
