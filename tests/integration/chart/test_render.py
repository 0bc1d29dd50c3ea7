"""What the chart renders for each value set, and what it refuses (no cluster needed, only helm).

The value sets are the files in ``charts/qstash-operator/ci/``; the same files are installed into
the local control plane by ``test_install.py`` and documented in the README for kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.chart.support import (
    CHART,
    REPO,
    VALUE_SETS,
    Manifest,
    find,
    helm,
    one,
    parse,
    render,
    values_file,
)

NAMESPACED_KINDS = {
    "Deployment",
    "Service",
    "ServiceAccount",
    "Secret",
    "Role",
    "RoleBinding",
    "Ingress",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
}
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def env_of(deployment: Manifest) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def container_of(deployment: Manifest) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def rules_of(manifests: list[Manifest], kind: str, suffix: str) -> list[dict[str, Any]]:
    return [rule for role in find(manifests, kind, suffix) for rule in role["rules"]]


def verbs(rules: list[dict[str, Any]], resource: str) -> set[str]:
    return {verb for rule in rules if resource in rule["resources"] for verb in rule["verbs"]}


def pods(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in find(manifests, "Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]


# -- every value set -----------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict_passes(bin_dir: Path, value_set: str) -> None:
    result = helm(bin_dir, "lint", "--strict", str(CHART), "-f", str(values_file(value_set)))
    assert "0 chart(s) failed" in result.stdout


def test_lint_strict_passes_with_the_defaults(bin_dir: Path) -> None:
    assert "0 chart(s) failed" in helm(bin_dir, "lint", "--strict", str(CHART)).stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_are_hardened_probed_and_bounded(bin_dir: Path, value_set: str) -> None:
    manifests = render(bin_dir, value_set)
    assert list(pods(manifests))
    for name, pod in pods(manifests):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["enableServiceLinks"] is False
        [container] = pod["containers"]
        hardened = container["securityContext"]
        assert hardened["allowPrivilegeEscalation"] is False, name
        assert hardened["readOnlyRootFilesystem"] is True, name
        assert hardened["capabilities"] == {"drop": ["ALL"]}, name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp on a read-only root"
        assert container["image"] == "qstash-operator:0.1.0"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_labelled_and_namespaced_where_it_should_be(
    bin_dir: Path, value_set: str
) -> None:
    manifests = render(
        bin_dir, value_set, sets=["global.commonLabels.team=payments"], namespace="qso-ns"
    )
    for manifest in manifests:
        meta = manifest["metadata"]
        labels = meta["labels"]
        assert labels["team"] == "payments", meta["name"]
        assert labels["app.kubernetes.io/instance"] == "qso", meta["name"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", meta["name"]
        assert len(meta["name"]) <= 63, meta["name"]
        if manifest["kind"] in CLUSTER_KINDS:
            assert "namespace" not in meta, meta["name"]
        else:
            assert manifest["kind"] in NAMESPACED_KINDS, manifest["kind"]
            assert meta["namespace"], meta["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rbac_names_every_verb_and_resource(bin_dir: Path, value_set: str) -> None:
    manifests = render(bin_dir, value_set)
    roles = find(manifests, "ClusterRole") + find(manifests, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)


def test_every_rbac_rule_in_the_templates_carries_a_comment() -> None:
    sources = sorted((CHART / "templates").glob("*rbac*"))
    assert len(sources) >= 3
    for source in sources:
        lines = source.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.lstrip().startswith("- apiGroups:"):
                above = lines[number - 1].strip()
                assert above.startswith("#"), f"{source.name}:{number + 1} has no comment"


# -- the modes -----------------------------------------------------------------------------------


def test_defaults_are_development_mode_without_a_webhook(bin_dir: Path) -> None:
    manifests = render(bin_dir)
    assert [d["metadata"]["name"] for d in find(manifests, "Deployment")] == [
        "qso-qstash-operator-operator"
    ]
    assert not find(manifests, "Secret")
    assert not find(manifests, "ServiceAccount", "-webhook")
    env = env_of(one(manifests, "Deployment", "-operator"))
    assert "QSTASH_TOKEN" not in env
    assert env["QSTASH_OPERATOR_BACKEND"] == "Auto"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_cronjob_value_set_renders_the_operator_alone(bin_dir: Path) -> None:
    manifests = render(bin_dir, "cronjob")
    kinds = sorted({m["kind"] for m in manifests})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    operator = one(manifests, "Deployment", "-operator")
    assert not any(key.startswith("QSTASH_TOKEN") for key in env_of(operator))
    # the operator's rules cover the CronJob backend cluster-wide
    rules = rules_of(manifests, "ClusterRole", "-operator")
    assert verbs(rules, "cronjobs") == {"get", "list", "watch", "create", "update", "delete"}


def test_qstash_value_set_wires_credentials_url_and_two_replicas(bin_dir: Path) -> None:
    manifests = render(bin_dir, "qstash")
    secret = one(manifests, "Secret")
    assert set(secret["stringData"]) == {
        "QSTASH_TOKEN",
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
    }
    operator = one(manifests, "Deployment", "-operator")
    webhook = one(manifests, "Deployment", "-webhook")
    assert (operator["spec"]["replicas"], webhook["spec"]["replicas"]) == (2, 2)
    op_env, wh_env = env_of(operator), env_of(webhook)
    for name in ("QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY"):
        assert op_env[name] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": name}}
    assert op_env["QSTASH_OPERATOR_CLUSTER_NAME"] == wh_env["QSTASH_OPERATOR_CLUSTER_NAME"]
    assert (
        op_env["WEBHOOK_PUBLIC_URL"] == wh_env["WEBHOOK_PUBLIC_URL"] == "https://cron.example.com"
    )
    assert op_env["QSTASH_OPERATOR_CLUSTER_NAME"] == "ci-qstash"
    args = container_of(operator)["args"]
    assert args[:2] == ["operator", "--http-port=8081"]
    assert "--leader-election" in args
    assert "--lease-name=qstash-operator" in args

    # The webhook reads its keys from the mounted Secret (rotation without restart).
    assert container_of(webhook)["args"][0] == "webhook"
    keys_dir = wh_env["QSTASH_SIGNING_KEYS_DIR"]
    mount = next(m for m in container_of(webhook)["volumeMounts"] if m["mountPath"] == keys_dir)
    volume = next(
        v for v in webhook["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert {item["path"] for item in volume["secret"]["items"]} == {
        "QSTASH_CURRENT_SIGNING_KEY",
        "QSTASH_NEXT_SIGNING_KEY",
    }
    assert "QSTASH_CURRENT_SIGNING_KEY" not in wh_env  # the files, not the variables

    service = one(manifests, "Service", "-webhook")
    ingress = one(manifests, "Ingress")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "cron.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert ingress["spec"]["tls"] == [
        {"hosts": ["cron.example.com"], "secretName": "cron-example-com-tls"}
    ]
    # The console is served (on the webhook's port) but not published by default.
    assert wh_env["QSTASH_WEBHOOK_UI"] == "true"
    assert "/ui" not in {path["path"] for path in rule["http"]["paths"]}
    assert len(find(manifests, "PodDisruptionBudget")) == 2
    assert len(find(manifests, "NetworkPolicy")) == 2
    # Webhook RBAC: cluster-wide, with the reviews the /api/cron endpoints and the console need.
    rules = rules_of(manifests, "ClusterRole", "-webhook")
    assert verbs(rules, "events") == {"create", "list"}
    assert verbs(rules, "tokenreviews") == {"create"}
    assert verbs(rules, "subjectaccessreviews") == {"create"}
    assert verbs(rules, "jobs") == {"list", "watch", "create", "delete"}
    # Leader election: our one Lease by name, plus the unrestrictable create.
    lease_rules = rules_of(manifests, "Role", "-leader-election")
    assert {tuple(r.get("resourceNames", [])): tuple(r["verbs"]) for r in lease_rules} == {
        ("qstash-operator",): ("get", "update"),
        (): ("create",),
    }


def test_existing_secret_value_set_renders_no_secret_and_uses_the_named_one(bin_dir: Path) -> None:
    manifests = render(bin_dir, "existing-secret")
    assert not find(manifests, "Secret")
    operator = one(manifests, "Deployment", "-operator")
    webhook = one(manifests, "Deployment", "-webhook")
    assert env_of(operator)["QSTASH_TOKEN"]["secretKeyRef"]["name"] == "qstash-credentials"
    volumes = webhook["spec"]["template"]["spec"]["volumes"]
    assert {v["secret"]["secretName"] for v in volumes if "secret" in v} == {"qstash-credentials"}


def test_namespaced_value_set_grants_roles_only_where_it_watches(bin_dir: Path) -> None:
    manifests = render(bin_dir, "namespaced")
    for component in ("operator", "webhook"):
        roles = find(manifests, "Role", f"-{component}")
        assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
        bindings = find(manifests, "RoleBinding", f"-{component}")
        assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
        for binding in bindings:
            assert binding["subjects"][0]["namespace"] == "qso-system"
        env = env_of(one(manifests, "Deployment", f"-{component}"))
        assert env["QSTASH_OPERATOR_NAMESPACES"] == "team-a,team-b"
    # What stays cluster-wide is read-only discovery (operator) and the reviews (webhook).
    framework = one(manifests, "ClusterRole", "-operator-framework")
    assert {(r["resources"][0], tuple(r["verbs"])) for r in framework["rules"]} == {
        ("customresourcedefinitions", ("list", "watch")),
        ("namespaces", ("list", "watch")),
    }
    webhook = one(manifests, "ClusterRole", "-webhook")
    assert {r["resources"][0] for r in webhook["rules"]} == {
        "tokenreviews",
        "subjectaccessreviews",
    }
    assert not find(manifests, "ClusterRole", "-operator")  # only the framework one


def test_user_roles_aggregate_view_and_edit_with_the_trigger_verb(bin_dir: Path) -> None:
    manifests = render(bin_dir)
    view = one(manifests, "ClusterRole", "-view")
    edit = one(manifests, "ClusterRole", "-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "trigger" in verbs(edit["rules"], "cronworkflows")
    assert "backfill" in verbs(edit["rules"], "cronworkflows")
    # Each custom verb is a rule of its own, so a Role can copy exactly one of them.
    custom = [
        rule["verbs"] for rule in edit["rules"] if set(rule["verbs"]) & {"trigger", "backfill"}
    ]
    assert sorted(custom) == [["backfill"], ["trigger"]]
    assert verbs(view["rules"], "cronworkflows") == {"get", "list", "watch"}
    assert not find(
        render(bin_dir, sets=["global.rbac.aggregateClusterRoles=false"]), "ClusterRole", "-edit"
    )
    assert not find(render(bin_dir, sets=["global.rbac.create=false"]), "ClusterRole")


def test_optional_extras_render_when_asked(bin_dir: Path) -> None:
    manifests = render(
        bin_dir,
        "qstash",
        sets=[
            "prometheus.serviceMonitor.enabled=true",
            "prometheus.serviceMonitor.labels.release=kube-prometheus",
            "image.registry=ghcr.io/example",
            "image.digest=sha256:" + "a" * 64,
            "global.priorityClassName=system-cluster-critical",
            "webhook.podDisruptionBudget.maxUnavailable=1",
        ],
    )
    monitors = find(manifests, "ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        "qso-qstash-operator-operator",
        "qso-qstash-operator-webhook",
    ]
    ports = {m["metadata"]["name"]: m["spec"]["endpoints"][0]["port"] for m in monitors}
    assert ports["qso-qstash-operator-operator"] == "http-metrics"
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus" for m in monitors)
    for _, pod in pods(manifests):
        assert pod["containers"][0]["image"] == "ghcr.io/example/qstash-operator@sha256:" + "a" * 64
        assert pod["priorityClassName"] == "system-cluster-critical"
    budget = one(manifests, "PodDisruptionBudget", "-webhook")["spec"]
    assert budget.get("maxUnavailable") == 1
    assert "minAvailable" not in budget


# -- the CRD -------------------------------------------------------------------------------------


def test_the_rendered_crd_is_the_one_in_crds(bin_dir: Path) -> None:
    [source] = sorted((REPO / "crds").glob("*.yaml"))
    crd = one(render(bin_dir), "CustomResourceDefinition")
    assert crd["spec"] == yaml.safe_load(source.read_text())["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_the_ingress_publishes_only_the_delivery_endpoint_unless_told(bin_dir: Path) -> None:
    """The token-protected API stays inside the cluster by default: QStash needs one path."""

    def paths(*sets: str) -> list[str]:
        [rule] = one(render(bin_dir, "qstash", sets=sets), "Ingress")["spec"]["rules"]
        return [entry["path"] for entry in rule["http"]["paths"]]

    assert paths() == ["/api/qstash/webhook"]
    wider = "webhook.ingress.paths={/api/qstash/webhook,/api/cron,/api/test-cron}"
    assert paths(wider) == ["/api/qstash/webhook", "/api/cron", "/api/test-cron"]
    result = helm(
        bin_dir,
        "template",
        str(CHART),
        "-f",
        str(values_file("qstash")),
        "--set",
        "webhook.ingress.paths=null",
        check=False,
    )
    assert result.returncode != 0
    assert "webhook.ingress.paths is empty" in result.stderr


def test_the_webhook_api_wants_tokens_for_its_own_audience(bin_dir: Path) -> None:
    webhook = one(render(bin_dir, "qstash"), "Deployment", "-webhook")
    assert env_of(webhook)["QSTASH_OPERATOR_API_AUDIENCE"] == "qstash-operator"
    other = render(bin_dir, "qstash", sets=["webhook.apiAudience=cron-api"])
    assert env_of(one(other, "Deployment", "-webhook"))["QSTASH_OPERATOR_API_AUDIENCE"] == (
        "cron-api"
    )


def test_crds_can_be_left_out_or_left_to_go(bin_dir: Path) -> None:
    assert not find(render(bin_dir, sets=["crds.enabled=false"]), "CustomResourceDefinition")
    crd = one(render(bin_dir, sets=["crds.keep=false"]), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]


# -- what the chart refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "complaint"),
    [
        pytest.param("operator.replica=2", "additional properties 'replica'", id="a misspelt key"),
        pytest.param("webhook.ingress.enable=true", "additional properties 'enable'", id="nested"),
        pytest.param("unknownTopLevel=1", "additional properties 'unknownTopLevel'", id="top"),
        pytest.param("operator.replicas=two", "want integer", id="a string for a number"),
        pytest.param("crds.enabled=yes-please", "want boolean", id="a string for a boolean"),
        pytest.param("backend=Cron", "value must be one of", id="not in the enum"),
        pytest.param("clusterName=a.b", "does not match pattern", id="a dot in the cluster name"),
        pytest.param("operator.replicas=0", "minimum", id="below the minimum"),
    ],
)
def test_the_schema_refuses_unknown_keys_and_wrong_types(
    bin_dir: Path, pair: str, complaint: str
) -> None:
    for command in ("template", "lint"):
        result = helm(bin_dir, command, str(CHART), "--set", pair, check=False)
        assert result.returncode != 0, (command, pair)
        assert complaint in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("pairs", "complaint"),
    [
        pytest.param(["qstash.token=t"], "set both qstash.currentSigningKey", id="token alone"),
        pytest.param(
            ["qstash.currentSigningKey=a", "qstash.nextSigningKey=b"],
            "qstash.token is empty",
            id="keys alone",
        ),
        pytest.param(
            ["qstash.existingSecret=s", "qstash.token=t"],
            "leave qstash.token",
            id="a secret and inline values",
        ),
        pytest.param(
            ["qstash.existingSecret=s"], "set webhook.publicUrl", id="QStash without a URL"
        ),
        pytest.param(["webhook.enabled=true"], "QStash is not configured", id="a useless webhook"),
        pytest.param(
            ["operator.replicas=2", "operator.leaderElection.enabled=false"],
            "needs operator.leaderElection.enabled",
            id="two leaders",
        ),
        pytest.param(
            [
                "operator.podDisruptionBudget.enabled=true",
                "operator.podDisruptionBudget.minAvailable=1",
                "operator.podDisruptionBudget.maxUnavailable=1",
            ],
            "not both",
            id="two budgets",
        ),
    ],
)
def test_combinations_that_cannot_work_fail_with_the_fix(
    bin_dir: Path, pairs: list[str], complaint: str
) -> None:
    args = ["template", str(CHART)]
    for pair in pairs:
        args += ["--set", pair]
    result = helm(bin_dir, *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


# Every switch on, so that each value has somewhere to show: QStash mode with an Ingress, budgets,
# monitors, policies and a NodePort Service.
EVERYTHING_ON = [
    "webhook.ingress.enabled=true",
    "webhook.podDisruptionBudget.enabled=true",
    "operator.podDisruptionBudget.enabled=true",
    "prometheus.serviceMonitor.enabled=true",
    "prometheus.rules.enabled=true",
    "networkPolicy.enabled=true",
    'webhook.service.type="NodePort"',
]
SPECIAL_MUTATIONS: dict[str, Any] = {
    "webhook.enabled": False,  # QStash mode already enables it
    "qstash.existingSecret": "elsewhere",  # refused next to inline values: still proves a read
    "webhook.publicUrl": "https://changed.example.com",
    "qstash.url": "https://changed.example.com",
}


def mutation(path: str, default: Any, schema: dict[str, Any]) -> Any:
    """A valid value different from the default."""
    if path in SPECIAL_MUTATIONS:
        return SPECIAL_MUTATIONS[path]
    if "enum" in schema:
        return next(option for option in schema["enum"] if option != default)
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if isinstance(default, bool):
        return not default
    if isinstance(default, int) or (default is None and "integer" in types):
        return (default or 0) + 30001
    if isinstance(default, str) or (default is None and "string" in types):
        return "changed"
    if isinstance(default, list):
        return [{"name": "changed"}] if schema.get("items") is None else ["changed"]
    if isinstance(default, dict):
        return {**default, "changed": "yes"}
    raise AssertionError(f"no mutation for {path} ({types})")


def leaves(schema: dict[str, Any], values: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, default, schema) of every documented value, not descending into free-form ones."""
    for key, sub in schema["properties"].items():
        path = f"{prefix}.{key}" if prefix else key
        if "properties" in sub:
            yield from leaves(sub, values[key], path)
        else:
            yield path, values[key], sub


def merge(target: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def test_every_documented_value_changes_what_renders(bin_dir: Path) -> None:
    """A value no template reads would be a lie in values.yaml (cert-manager lints for it):
    changing each one, alone, must change the rendered output (or make the chart refuse)."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # Mutate relative to what the baseline uses: values.yaml, then the value set, then the switches.
    merge(values, yaml.safe_load(values_file("qstash").read_text()))
    for pair in EVERYTHING_ON:
        path, _, raw = pair.partition("=")
        *parents, last = path.split(".")
        node = values
        for key in parents:
            node = node[key]
        node[last] = json.loads(raw)
    base_args = ["template", "qso", str(CHART), "-f", str(values_file("qstash"))]
    for pair in EVERYTHING_ON:  # --set-json, as the mutations: helm applies --set after it
        base_args += ["--set-json", pair]
    baseline = helm(bin_dir, *base_args).stdout
    unused = []
    for path, default, sub in leaves(schema, values):
        changed = json.dumps(mutation(path, default, sub))
        result = helm(bin_dir, *base_args, "--set-json", f"{path}={changed}", check=False)
        if result.returncode == 0 and result.stdout == baseline:
            unused.append(path)
    assert unused == [], unused


DELIVERIES = "/api/qstash/webhook"
"""What the chart's Ingress publishes by default (``webhook.ingress.paths``): QStash's way in."""


@pytest.mark.parametrize(
    ("sets", "ui_env", "published"),
    [
        pytest.param([], "true", [DELIVERIES], id="defaults: served, not published"),
        pytest.param(
            ["webhook.ingress.exposeUI=true"],
            "true",
            [DELIVERIES, "/ui"],
            id="published on request",
        ),
        pytest.param(
            ["webhook.ui.enabled=false", "webhook.ingress.exposeUI=true"],
            "false",
            [DELIVERIES],
            id="off: nothing to publish",
        ),
    ],
)
def test_the_console_is_served_and_published_as_asked(
    bin_dir: Path, sets: list[str], ui_env: str, published: list[str]
) -> None:
    manifests = render(bin_dir, "qstash", sets=sets)
    webhook = one(manifests, "Deployment", "-webhook")
    assert env_of(webhook)["QSTASH_WEBHOOK_UI"] == ui_env
    [rule] = one(manifests, "Ingress")["spec"]["rules"]
    assert [path["path"] for path in rule["http"]["paths"]] == published


def test_the_hot_path_and_mirror_settings_reach_their_processes(
    bin_dir: Path, tmp_path: Path
) -> None:
    """The webhook's caches and status delay, and the operator's status mirror, from values to
    the environment variables the one Settings object reads (which refuses bad ones at start)."""
    defaults = render(bin_dir, "qstash")
    assert {
        key: value
        for key, value in env_of(one(defaults, "Deployment", "-webhook")).items()
        if key.startswith("QSTASH_WEBHOOK_") and key != "QSTASH_WEBHOOK_UI"
    } == {
        "QSTASH_WEBHOOK_CACHE": "true",
        "QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS": "50000",
        "QSTASH_WEBHOOK_CACHE_MAX_JOBS": "150000",
        "QSTASH_WEBHOOK_STATUS_DELAY": "1",
        "QSTASH_WEBHOOK_STATUS_MAX_DELAY": "15",
    }
    assert {
        key: value
        for key, value in env_of(one(defaults, "Deployment", "-operator")).items()
        if key.startswith("QSTASH_OPERATOR_MIRROR_")
    } == {
        "QSTASH_OPERATOR_MIRROR_DELAY": "2",
        "QSTASH_OPERATOR_MIRROR_RECORD_GRACE": "60",
        "QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS": "50000",
    }
    chosen_values = {
        "webhook": {
            "cache": {
                "enabled": False,
                "maxCronWorkflows": 2_000_000,
                "maxJobs": 6_000_000,
                "statusDelaySeconds": 0.5,
                "statusMaxDelaySeconds": 2.5,
            }
        },
        "operator": {
            "statusMirror": {
                "delaySeconds": 0.25,
                "recordGraceSeconds": 30,
                "cacheMaxCronWorkflows": 1_000_000,
            }
        },
    }
    chosen_file = tmp_path / "chosen.yaml"
    chosen_file.write_text(yaml.safe_dump(chosen_values))
    chosen = parse(
        helm(
            bin_dir,
            "template",
            "qso",
            str(CHART),
            "--namespace",
            "qso-system",
            "-f",
            str(values_file("qstash")),
            "-f",
            str(chosen_file),
        ).stdout
    )
    webhook = env_of(one(chosen, "Deployment", "-webhook"))
    assert (
        webhook["QSTASH_WEBHOOK_CACHE"],
        webhook["QSTASH_WEBHOOK_CACHE_MAX_CRONWORKFLOWS"],
        webhook["QSTASH_WEBHOOK_CACHE_MAX_JOBS"],
        webhook["QSTASH_WEBHOOK_STATUS_DELAY"],
        webhook["QSTASH_WEBHOOK_STATUS_MAX_DELAY"],
    ) == ("false", "2000000", "6000000", "0.5", "2.5")  # whole numbers stay whole, not 2e+06
    operator = env_of(one(chosen, "Deployment", "-operator"))
    assert (
        operator["QSTASH_OPERATOR_MIRROR_DELAY"],
        operator["QSTASH_OPERATOR_MIRROR_RECORD_GRACE"],
        operator["QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS"],
    ) == ("0.25", "30", "1000000")
