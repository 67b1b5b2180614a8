"""docker-compose.yml and the Dockerfile: what `docker compose up` would start, checked offline."""

from __future__ import annotations

import re
import tomllib

from deploy_facts import CONTRACT_ENV, DEPLOY, WORKERS

from catalog_sync.runtime.config import DEFAULT_METRICS_PORTS

APP_SERVICES = (*WORKERS, "api")


def test_compose_has_the_expected_services(compose):
    assert set(compose["services"]) == {
        "kafka", "kafka-topics", "postgres", *APP_SERVICES, "amazon-emulator", "prometheus", "grafana",
    }


def test_kafka_is_apache_kafka_in_kraft_mode(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].split(":")[0].endswith("apache/kafka")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    # Topics only come from the topic service, with their partition counts.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["INTERNAL"] == compose["services"]["validator"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]


def test_topics_are_created_before_the_app_starts(compose):
    topics = compose["services"]["kafka-topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = topics["volumes"][0].split(":")[0]
    assert (DEPLOY / script).is_file()
    for name in APP_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_workers_pick_their_command_and_can_scale(compose):
    for name in WORKERS:
        service = compose["services"][name]
        assert service["command"] == [name]
        # A published host port or a fixed container name would make `--scale NAME=2` fail.
        assert "ports" not in service and "container_name" not in service, name
        assert int(service["environment"]["METRICS_PORT"]) == DEFAULT_METRICS_PORTS[name]
    assert compose["services"]["api"]["command"][0] == "api"


def test_app_services_get_the_contract_configuration(compose):
    credentials = {"LWA_CLIENT_ID", "LWA_CLIENT_SECRET", "LWA_REFRESH_TOKEN"}
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        expected = set(CONTRACT_ENV) - {"API_PORT", "METRICS_PORT"} - credentials
        assert not expected - set(env), f"{name} lacks {sorted(expected - set(env))}"
        assert env["READ_STORE_URL"].startswith("postgresql://")
        # Only the submitter talks to Amazon.
        assert (credentials <= set(env)) == (name == "submitter"), name
        assert not (credentials & set(env)) or name == "submitter", name
    # Secrets come from the caller's environment, never written into the file.
    env = compose["services"]["submitter"]["environment"]
    for secret in credentials:
        assert env[secret] == "${" + secret + ":-}", env[secret]


def test_emulator_only_in_demo_profile(compose):
    profiled = {name: s["profiles"] for name, s in compose["services"].items() if "profiles" in s}
    assert profiled == {"amazon-emulator": ["demo"]}
    demo_env = dict(
        line.split("=", 1) for line in (DEPLOY / "demo.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert demo_env["COMPOSE_PROFILES"] == "demo"
    # The demo points the submitter at the emulator's port inside the compose network.
    emulator = compose["services"]["amazon-emulator"]
    port = emulator["command"][-1]
    assert demo_env["SPAPI_ENDPOINT"] == f"http://amazon-emulator:{port}"
    # The emulator lets in only the account the demo's submitter logs in with, from the same variables.
    assert "--accounts-from-env" in emulator["command"]
    for name in ("LWA_CLIENT_ID", "LWA_CLIENT_SECRET", "LWA_REFRESH_TOKEN", "SELLER_ID"):
        assert emulator["environment"][name] == "${" + name + ":-}" and demo_env[name], name


def test_monitoring_mounts_files_that_exist(compose):
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def image_distributions(service: str) -> set[str]:
    """The distributions deploy/Dockerfile installs for build argument SERVICE=service."""
    return {tomllib.loads((DEPLOY.parent / folder / "pyproject.toml").read_text())["project"]["name"]
            for folder in ("schemas", "runtime", f"services/{service}")}


def test_dockerfile_installs_one_service_on_the_runtime():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN .*pip install \./schemas \./runtime \./services/\$\{SERVICE\}", dockerfile, re.M)
    assert 'ENTRYPOINT ["catalog-sync"]' in dockerfile
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.M))
    assert copied == {"schemas", "runtime", "services/${SERVICE}"}
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for folder in ("schemas", "runtime", "services"):
        assert f"!{folder}/**" in ignored, folder


def images(compose, k8s_docs):
    """(SERVICE build argument, command) of every catalog-sync container in compose and Kubernetes."""
    found = [(s["build"]["args"]["SERVICE"], s["command"]) for s in compose["services"].values() if "build" in s]
    for _, doc in k8s_docs:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                name = re.fullmatch(r"catalog-sync-([a-z-]+):[\w.]+", container["image"])
                assert name, container["image"]
                found.append((name.group(1).replace("-", "_"), container["args"]))
    return found


def test_each_image_holds_the_command_it_runs(compose, k8s_docs):
    from catalog_sync.cli import build_parser

    found = images(compose, k8s_docs)
    assert len(found) >= 9
    for service, command in found:
        # Only the commands of the distributions that image installs: a command of another
        # service would fail in the container.
        args = build_parser(image_distributions(service)).parse_args(command)
        assert callable(args.func), (service, command)


