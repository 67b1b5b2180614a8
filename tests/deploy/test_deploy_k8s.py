"""deploy/k8s: manifests valid for Kubernetes (offline, strict) and consistent with the code and KEDA."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from deploy_facts import CONTRACT_ENV, DEPLOY, INPUT_TOPICS, WORKERS

from catalog_sync.runtime.config import DEFAULT_METRICS_PORTS, RuntimeSettings

KUBERNETES_VERSION = "1.30.0"
NOT_IN_CORE = {"ScaledObject", "Kustomization"}  # KEDA's CRD; kustomize's own file


def by_kind(docs, kind):
    return {doc["metadata"]["name"]: doc for _, doc in docs if doc["kind"] == kind}


def container(deployment):
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_manifests_validate_strictly(k8s_docs):
    errors = []
    for file, doc in k8s_docs:
        if doc["kind"] in NOT_IN_CORE:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{file} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


def test_kustomization_applies_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_every_worker_has_a_deployment_and_a_lag_scaler(k8s_docs):
    deployments = by_kind(k8s_docs, "Deployment")
    scalers = by_kind(k8s_docs, "ScaledObject")
    config = by_kind(k8s_docs, "ConfigMap")["catalog-sync-config"]["data"]
    partitions = int(topics_job_env(k8s_docs)["PARTITIONS"])
    assert set(scalers) == set(WORKERS)
    for name in WORKERS:
        deployment = deployments[scalers[name]["spec"]["scaleTargetRef"]["name"]]
        assert container(deployment)["args"] == [name]
        spec = scalers[name]["spec"]
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        # KEDA must watch the group the worker really joins (its default: the service name).
        assert meta["consumerGroup"] == RuntimeSettings.from_env(name, {}).group_id == name
        assert meta.get("topic") == INPUT_TOPICS.get(name)
        assert meta["bootstrapServersFromEnv"] in config
        assert int(meta["lagThreshold"]) > 0
        assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
        # More replicas than partitions would sit idle.
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions


def test_metrics_ports_match_the_code_and_the_scrape_annotations(k8s_docs):
    deployments = by_kind(k8s_docs, "Deployment")
    for name in WORKERS:
        pod = deployments[name]["spec"]["template"]
        c = container(deployments[name])
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        port = DEFAULT_METRICS_PORTS[name]
        assert int(env["METRICS_PORT"]) == port
        assert [p["containerPort"] for p in c["ports"]] == [port]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_api_service_reaches_the_api_pods(k8s_docs):
    service = by_kind(k8s_docs, "Service")["api"]
    api = by_kind(k8s_docs, "Deployment")["api"]
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container(api)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_config_covers_the_contract_and_keeps_secrets_out_of_the_configmap(k8s_docs):
    config = by_kind(k8s_docs, "ConfigMap")["catalog-sync-config"]["data"]
    secret = by_kind(k8s_docs, "Secret")["catalog-sync-secrets"]["stringData"]
    assert not set(config) & set(secret)
    # METRICS_PORT differs per worker: each Deployment sets it.
    assert set(CONTRACT_ENV) - {"METRICS_PORT"} <= set(config) | set(secret)
    # Credentials, and the store URL that carries the database password.
    assert {"LWA_CLIENT_SECRET", "LWA_REFRESH_TOKEN", "READ_STORE_URL"} <= set(secret)
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values must be strings"


def test_every_referenced_key_exists(k8s_docs):
    maps = {name: set(doc["data"]) for name, doc in by_kind(k8s_docs, "ConfigMap").items()}
    secrets = {name: set(doc["stringData"]) for name, doc in by_kind(k8s_docs, "Secret").items()}
    for file, doc in k8s_docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps, file
            for var in c.get("env", []):
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in maps[ref["configMapKeyRef"]["name"]], (file, var)
                if "secretKeyRef" in ref and not ref["secretKeyRef"].get("optional"):
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], (file, var)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, (file, volume)


@pytest.mark.parametrize("name", [*WORKERS, "api"])
def test_pods_run_as_the_image_user(k8s_docs, name):
    uid = re.search(r"^USER (\d+)", (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
    security = by_kind(k8s_docs, "Deployment")[name]["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == uid


def test_topic_job_runs_the_compose_script(k8s_docs):
    script = by_kind(k8s_docs, "ConfigMap")["catalog-sync-create-topics"]["data"]["create-topics.sh"]
    assert script == (DEPLOY / "kafka" / "create-topics.sh").read_text(), (
        "deploy/k8s/topics.yaml must embed deploy/kafka/create-topics.sh unchanged"
    )


def topics_job_env(k8s_docs) -> dict:
    job = by_kind(k8s_docs, "Job")["create-topics"]
    return {e["name"]: e.get("value") for e in container(job)["env"]}
