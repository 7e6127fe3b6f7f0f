"""docker/k8s manifests (issue 9, item 3).

Core Kubernetes kinds are validated with ``kubernetes-validate`` (PyPI, pinned in
requirements/dev.txt) in strict mode — unknown fields are errors — against the oldest
Kubernetes minor we support (1.30, EKS standard support) and the newest the package knows.
kubernetes-validate ships no schemas for custom resources, so the KEDA (ScaledObject,
TriggerAuthentication), External Secrets (ExternalSecret, SecretStore) and Prometheus
Operator (PodMonitor) objects are checked structurally here instead: required fields,
and that they point at the objects and values the core manifests define.
"""

import os
import re
import sys
from collections.abc import Iterator

import kubernetes_validate
import pytest
import yaml

from tests.deploy.deploy_tools import K8S, REPO, run

KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_KINDS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "ExternalSecret": "external-secrets.io/v1beta1",  # pragma: allowlist secret
    "SecretStore": "external-secrets.io/v1beta1",  # pragma: allowlist secret
    "PodMonitor": "monitoring.coreos.com/v1",
}
SECRET_NAMES = {"DJANGO_SECRET_KEY", "DPP_API_KEY_PEPPER", "DATABASE_URL", "REDIS_URL"}
LONGEST_TIMEBOX_SEC = 90


def manifest_files() -> list[str]:
    return sorted(
        str(path.relative_to(REPO))
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml"
    )


def load_all() -> list[tuple[str, dict]]:
    return [
        (name, doc)
        for name in manifest_files()
        for doc in yaml.safe_load_all((REPO / name).read_text())
        if doc
    ]


RESOURCES = load_all()


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in RESOURCES if doc["kind"] == kind}


def pod_specs() -> Iterator[tuple[str, dict]]:
    for kind in ("Deployment", "Job"):
        for name, doc in by_kind(kind).items():
            yield name, doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("filename", "resource"),
    [(f, d) for f, d in RESOURCES if d["kind"] not in CRD_KINDS],
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_core_manifest_is_valid_kubernetes(filename: str, resource: dict, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


def test_every_manifest_is_core_or_a_known_crd() -> None:
    for filename, doc in RESOURCES:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == CRD_KINDS[doc["kind"]], filename
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "dpp", filename
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "dpp", filename


def test_kubernetes_validate_cli_is_strict(tmp_path) -> None:
    """The validator is live: an unknown field and a wrong type both fail the CLI."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n"
        "  replicas: one\n  selector: {matchLabels: {a: b}}\n  template:\n"
        "    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i, livenessprobe: {}}]}\n"
    )
    validator = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    result = run([validator, "--strict", "--quiet", str(bad)])
    assert result.returncode != 0
    assert "did not validate" in result.stdout
    good = run([validator, "--strict", "--quiet", *manifest_files()])
    assert good.returncode == 0, good.stdout


# --- the shape docs/design.md and the pilot need ------------------------------------------------


def test_deployments_and_the_single_reaper() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == {"dpp-api", "dpp-worker", "dpp-reaper"}
    reaper = deployments["dpp-reaper"]["spec"]
    assert reaper["replicas"] == 1
    assert reaper["strategy"] == {"type": "Recreate"}
    for name in ("dpp-api", "dpp-worker"):
        assert "replicas" not in deployments[name]["spec"], f"{name} is sized by its autoscaler"
    args = {
        name: doc["spec"]["template"]["spec"]["containers"][0]["args"]
        for name, doc in deployments.items()
    }
    assert args == {"dpp-api": ["api"], "dpp-worker": ["worker"], "dpp-reaper": ["reaper"]}
    (job,) = by_kind("Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_worker_grace_period_outlasts_the_longest_timebox() -> None:
    worker = by_kind("Deployment")["dpp-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= LONGEST_TIMEBOX_SEC + 30


def test_api_probes_service_pdb_and_hpa() -> None:
    api = by_kind("Deployment")["dpp-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000
    labels = api["spec"]["template"]["metadata"]["labels"]
    service = by_kind("Service")["dpp-api"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = by_kind("PodDisruptionBudget")["dpp-api"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind("HorizontalPodAutoscaler")["dpp-api"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "dpp-api",
    }
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    # Probes and Prometheus use the pod IP as Host: it must be an allowed host.
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["DJANGO_ALLOWED_HOSTS"]["value"].startswith("$(POD_IP),")


def test_pods_are_hardened_and_bounded() -> None:
    configmap = by_kind("ConfigMap")["dpp-config"]["data"]
    for name, spec in pod_specs():
        assert spec["serviceAccountName"] == "dpp", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: writable /tmp emptyDir"
            assert container["image"] == "dpp:0.4.0-rc1", "kustomize `images` sets the release"
    assert configmap["DPP_VAR_DIR"].startswith("/tmp/")


def test_secrets_only_by_reference() -> None:
    configmap = by_kind("ConfigMap")["dpp-config"]["data"]
    assert not SECRET_NAMES & set(configmap)
    assert not {k for k in configmap if re.search(r"SECRET|PASSWORD|TOKEN|PEPPER|_KEY$", k)}
    (external,) = by_kind("ExternalSecret").values()
    provided = {item["secretKey"] for item in external["spec"]["data"]}
    target = external["spec"]["target"]["name"]
    for name, spec in pod_specs():
        for container in spec["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert set(env) >= SECRET_NAMES, name
            for variable in env.values():
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if variable["name"] in SECRET_NAMES:
                    assert "value" not in variable, f"{name}: {variable['name']} is a literal"
                    assert ref == {"name": target, "key": variable["name"]}, name
                if ref:
                    assert ref["key"] in provided, f"{name}: {ref['key']} is not synced"
            assert not any(e == "AWS_SECRET_ACCESS_KEY" for e in env), "IRSA, not static keys"


def test_production_settings_accept_the_kubernetes_environment(tmp_path) -> None:
    """ConfigMap + secret placeholders + the api's own env pass the production guard."""
    api = by_kind("Deployment")["dpp-api"]["spec"]["template"]["spec"]["containers"][0]
    env = dict(by_kind("ConfigMap")["dpp-config"]["data"])
    env.update({name: f"k8s-test-{name.lower()}-0123456789abcdefghij" for name in SECRET_NAMES})
    env.update(
        DATABASE_URL="postgres://dpp:pw@db:5432/dpp",  # pragma: allowlist secret
        REDIS_URL="rediss://cache:6379/0",
    )
    env["POD_IP"] = "10.0.1.5"
    for variable in api["env"]:
        if "value" in variable:  # the kubelet's $(VAR) expansion
            env[variable["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env[m.group(1)], variable["value"]
            )
    env.update(
        PATH=os.environ["PATH"],
        DJANGO_SETTINGS_MODULE="config.settings",
        DPP_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),  # the entrypoint creates it
    )
    check = (
        "import django; from django.conf import settings; django.setup(); "
        "assert settings.PRODUCTION and not settings.DEBUG; "
        "print(','.join(settings.ALLOWED_HOSTS))"
    )
    result = run([sys.executable, "-c", check], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("10.0.1.5,api.")


def test_service_account_has_an_iam_role() -> None:
    accounts = by_kind("ServiceAccount")
    for account in accounts.values():
        role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)
    (store,) = by_kind("SecretStore").values()
    reader = store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"]
    assert reader in accounts
    assert reader != "dpp", "the app's role cannot read Secrets Manager"
    assert store["spec"]["provider"]["aws"]["service"] == "SecretsManager"


# --- custom resources: structural checks ---------------------------------------------------


def test_external_secret_structure() -> None:
    (external,) = by_kind("ExternalSecret").values()
    spec = external["spec"]
    assert spec["secretStoreRef"]["name"] in by_kind("SecretStore")
    assert spec["secretStoreRef"]["kind"] == "SecretStore"
    assert spec["target"]["name"] == "dpp-secrets"
    assert re.fullmatch(r"\d+[smh]", spec["refreshInterval"])
    assert {item["secretKey"] for item in spec["data"]} == SECRET_NAMES
    for item in spec["data"]:
        assert set(item["remoteRef"]) == {"key", "property"}
        assert item["remoteRef"]["property"] == item["secretKey"]


def test_keda_scaled_object_follows_the_runs_queue() -> None:
    (scaled,) = by_kind("ScaledObject").values()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": "dpp-worker"}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    configmap = by_kind("ConfigMap")["dpp-config"]["data"]
    assert trigger["metadata"]["queueURL"] == configmap["DPP_SQS_RUNS_QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == configmap["AWS_DEFAULT_REGION"]
    assert int(trigger["metadata"]["queueLength"]) > 0
    assert all(isinstance(v, str) for v in trigger["metadata"].values()), "KEDA wants strings"
    auth = by_kind("TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "keda"}


def test_pod_monitor_gives_the_alert_rules_their_job_names() -> None:
    (monitor,) = by_kind("PodMonitor").values()
    spec = monitor["spec"]
    assert spec["jobLabel"] == "app.kubernetes.io/name"
    ports = {endpoint["port"] for endpoint in spec["podMetricsEndpoints"]}
    for name, deployment in by_kind("Deployment").items():
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == name
        assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        container_ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
        assert container_ports & ports, f"{name} exposes a scraped port"


def test_kustomizations_cover_every_manifest() -> None:
    main = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    migrate = yaml.safe_load((K8S / "migrate" / "kustomization.yaml").read_text())
    listed = {f"docker/k8s/{r}" for r in main["resources"]} | {
        f"docker/k8s/migrate/{r}" for r in migrate["resources"]
    }
    assert listed == set(manifest_files())
    assert main["images"] == migrate["images"], "the Job runs the release's image"
    assert main["namespace"] == migrate["namespace"] == "dpp"
