"""``operator.hostNetwork`` / ``webhook.hostNetwork``: off by default, and when on, with the DNS
policy that keeps cluster names resolvable from the node's network namespace (the real-node test
runs both this way: its API server and QStash-compatible server listen on the node's loopback)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.chart.support import one, render


def pod_specs(bin_dir: Path, *sets: str) -> dict[str, dict[str, object]]:
    manifests = render(bin_dir, "qstash", sets=list(sets))
    return {
        name: one(manifests, "Deployment", f"-{name}")["spec"]["template"]["spec"]
        for name in ("operator", "webhook")
    }


def test_pods_use_the_pod_network_by_default(bin_dir: Path) -> None:
    for name, spec in pod_specs(bin_dir).items():
        assert "hostNetwork" not in spec, name
        assert "dnsPolicy" not in spec, name


def test_host_network_is_per_component_and_keeps_cluster_dns(bin_dir: Path) -> None:
    specs = pod_specs(bin_dir, "webhook.hostNetwork=true")
    assert "hostNetwork" not in specs["operator"]
    assert specs["webhook"]["hostNetwork"] is True
    assert specs["webhook"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    specs = pod_specs(bin_dir, "operator.hostNetwork=true")
    assert specs["operator"]["hostNetwork"] is True
    assert specs["operator"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "hostNetwork" not in specs["webhook"]
