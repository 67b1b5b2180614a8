"""Real Apache Kafka on this machine without Docker: 1 or 3 combined broker+controller KRaft nodes
on free loopback ports, run from Apache Kafka's own jars (Maven Central, pinned in
deploy/kafka-local/pom.xml and fetched once into a cache folder).

For development (`catalog-sync broker --engine apache`, `make kafka`) and the tests' real-Kafka
tier. Each node is one `java … kafka.Kafka server.properties` process that can be stopped, killed
and started again on its own data, as fault tests need.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .bus import BusError, cluster_brokers
from .config import RuntimeSettings

log = logging.getLogger(__name__)

# The repository root from runtime/src/catalog_sync/runtime/: the pom is not part of the wheel.
POM = Path(__file__).resolve().parents[4] / "deploy" / "kafka-local" / "pom.xml"
JARS_DIR_ENV = "KAFKA_JARS_DIR"  # a folder of Kafka's jars to use instead of the cache (e.g. a distribution's libs/)
VERSION_ENV = "CATALOG_SYNC_KAFKA_VERSION"  # try another Kafka version than the pom's
MIN_JAVA = 17  # Kafka 4 brokers need Java 17
DEFAULT_HEAP = "384m"


class KafkaUnavailable(RuntimeError):
    """Java, Maven or the jars are missing: the message says which and what to install."""


# -- the jars ---------------------------------------------------------------------------------

def pinned_version(pom: Path = POM) -> str:
    """The Kafka version to run: CATALOG_SYNC_KAFKA_VERSION, else the pom's `kafka.version`."""
    override = os.environ.get(VERSION_ENV, "").strip()
    if override:
        return override
    if not pom.is_file():
        raise KafkaUnavailable(f"{pom} is missing: run from a clone of catalog-sync, or set {VERSION_ENV}")
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ET.parse(pom).getroot().find("m:properties/m:kafka.version", namespace)
    version = (found.text or "").strip() if found is not None else ""
    if not version:
        raise KafkaUnavailable(f"{pom} pins no kafka.version")
    return version


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "catalog-sync"


def jars_dir(version: str | None = None) -> Path:
    override = os.environ.get(JARS_DIR_ENV, "").strip()
    if override:
        return Path(override)
    return cache_root() / f"kafka-{version or pinned_version()}" / "lib"


def jars_present(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("kafka_2.13-*.jar"))


def java_command() -> str | None:
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def java_major_version(java: str) -> int | None:
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def fetch_jars(version: str | None = None, pom: Path = POM) -> Path:
    """The folder of Kafka's jars, fetched with Maven into the cache the first time. Idempotent;
    Maven keeps its own download cache (~/.m2), so a second folder costs no download."""
    version = version or pinned_version(pom)
    target = jars_dir(version)
    if jars_present(target):
        return target
    if os.environ.get(JARS_DIR_ENV, "").strip():
        raise KafkaUnavailable(f"{JARS_DIR_ENV}={target} holds no kafka_2.13 jar")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"Kafka's jars are not in {target} and Maven (mvn) is not installed to fetch them")
    if not pom.is_file():
        raise KafkaUnavailable(f"{pom} is missing: run from a clone of catalog-sync")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copied next to the target, then renamed: a fetch that fails half-way (or runs beside another
    # one) never leaves a folder that looks complete.
    staging = Path(tempfile.mkdtemp(prefix="lib.", dir=target.parent))
    try:
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-Dkafka.version={version}", f"-DoutputDirectory={staging}"],
            capture_output=True, text=True, timeout=900,
        )
        if result.returncode != 0 or not jars_present(staging):
            raise KafkaUnavailable(f"mvn could not fetch Apache Kafka {version}:\n{(result.stdout + result.stderr)[-3000:]}")
        try:
            staging.rename(target)
        except OSError:
            if not jars_present(target):  # not someone else's finished copy: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _checked_java() -> str:
    java = java_command()
    if java is None:
        raise KafkaUnavailable(f"Java is not installed (Apache Kafka needs Java {MIN_JAVA} or newer)")
    major = java_major_version(java)
    if major is None or major < MIN_JAVA:
        raise KafkaUnavailable(f"{java} is Java {major or '?'}; Apache Kafka 4 needs Java {MIN_JAVA} or newer")
    return java


def find_kafka(fetch: bool = True) -> tuple[str, Path, str]:
    """(java, jars folder, version) ready to run, or KafkaUnavailable saying what is missing."""
    java = _checked_java()
    version = pinned_version()
    directory = jars_dir(version)
    if not jars_present(directory):
        if not fetch:
            raise KafkaUnavailable(f"Kafka's jars are not in {directory}")
        directory = fetch_jars(version)
    return java, directory, version


def describe_availability() -> str:
    """What a cluster would run, without fetching or starting anything (for reports);
    KafkaUnavailable when it could not run here."""
    _checked_java()
    version = pinned_version()
    directory = jars_dir(version)
    if jars_present(directory):
        return f"Apache Kafka {version} (jars in {directory})"
    if os.environ.get(JARS_DIR_ENV, "").strip() or shutil.which("mvn") is None or not POM.is_file():
        raise KafkaUnavailable(f"Kafka's jars are not in {directory} and cannot be fetched here (needs Maven "
                               "and deploy/kafka-local/pom.xml)")
    return f"Apache Kafka {version} (jars to fetch with Maven into {directory})"


# -- one node ---------------------------------------------------------------------------------

def _kafka_uuid() -> str:
    """A Kafka Uuid as its tools print it (URL-safe base64 of 16 random bytes, unpadded). Kafka
    never hands out one starting with '-': command lines would read it as an option."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held together while choosing so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@functools.cache
def _parent_death_signal():
    """A function for the child between fork and exec: Linux kills the JVM if the process that
    started it dies (a test run killed by its timeout, a kill -9) instead of leaving a broker
    behind. libc is looked up here, in the parent: the child may only call it (no imports or
    dlopen there, whose locks another thread of ours could hold at the fork)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!-- One file per node, capped; the configuration dumps at start and partition state changes are
     left out (thousands of lines per start). -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="10 MB"/></Policies>
      <DefaultRolloverStrategy max="1"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="warn"/>
    <Logger name="state.change.logger" level="warn"/>
    <Root level="info"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
"""


@dataclass
class KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen | None = None
    directory_id: str = field(default_factory=_kafka_uuid)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    def cpu_seconds(self) -> float | None:
        """CPU time the running node used so far (Linux), for reports."""
        if not self.running:
            return None
        assert self.process is not None  # running means started
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, chars: int = 3000) -> str:
        text = ""
        for name in ("stdout.log", "server.log"):
            path = self.directory / "logs" / name
            if path.exists():
                text += f"--- {path}\n" + path.read_text(errors="replace")[-chars:]
        return text


def _properties(node: KafkaNode, nodes: list[KafkaNode]) -> str:
    count = len(nodes)
    replicas = min(count, 3)
    isr = 2 if replicas >= 3 else 1
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.bootstrap.servers": ",".join(f"127.0.0.1:{n.controller_port}" for n in nodes),
        "log.dirs": str(node.directory / "data"),
        # Topics are created by the code that uses them (ensure_topics, deploy/kafka/create-topics.sh),
        # as production clusters should be run: anything relying on auto-creation fails here.
        "auto.create.topics.enable": "false",
        "num.partitions": 4,
        "default.replication.factor": replicas,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": isr,
        # A development cluster: groups form at once, and old data goes within the hour.
        "group.initial.rebalance.delay.ms": 0,
        "log.retention.ms": 3_600_000,
        "log.retention.check.interval.ms": 60_000,
        "log.segment.bytes": 16 * 1024 * 1024,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


# -- the cluster ------------------------------------------------------------------------------

class ApacheKafkaCluster:
    """A local KRaft cluster of `nodes` (1 or 3) combined broker+controller nodes. Data lives in a
    temporary folder that `close()` removes. Use as a context manager, or call start() and close()."""

    def __init__(self, nodes: int = 1, *, heap: str = DEFAULT_HEAP, fetch: bool = True,
                 work_dir: Path | None = None, jvm_options: list[str] | None = None):
        if nodes not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes (a controller quorum needs an odd count)")
        self.java, self.jars, self.version = find_kafka(fetch=fetch)
        self.heap = heap
        self.jvm_options = list(jvm_options or [])
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="catalog-sync-kafka-"))
        self.cluster_id = _kafka_uuid()
        ports = _free_ports(2 * nodes)
        self.nodes = [
            KafkaNode(i + 1, ports[2 * i], ports[2 * i + 1], self.work_dir / f"node-{i + 1}") for i in range(nodes)
        ]
        self.started_in_s: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def env(self) -> dict[str, str]:
        """Environment for a worker using this cluster (the protocol version is negotiated)."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> ApacheKafkaCluster:
        started = time.monotonic()
        try:
            (self.work_dir / "log4j2.xml").write_text(LOG4J2_XML)
            for node in self.nodes:
                (node.directory / "logs").mkdir(parents=True, exist_ok=True)
                node.config_path.write_text(_properties(node, self.nodes))
            self._format()
            for node in self.nodes:
                self._launch(node)
            self._wait_for({n.node_id for n in self.nodes}, self.bootstrap_servers, started + timeout_s)
        except BaseException:
            self.close()
            raise
        self.started_in_s = time.monotonic() - started
        log.info("Apache Kafka %s: %d node(s) at %s in %.1f s", self.version, len(self.nodes),
                 self.bootstrap_servers, self.started_in_s)
        return self

    def _java(self, node: KafkaNode, *args: str, heap: str) -> list[str]:
        # A development cluster on a small machine: the client compiler alone starts a node on about
        # half the CPU (docs/operations.md), and the serial collector runs no GC threads beside us.
        # jvm_options come last, so they override these.
        return [self.java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true", f"-Dkafka.logs.dir={node.directory / 'logs'}",
                f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.xml'}",
                *self.jvm_options, "-cp", str(self.jars / "*"), *args]

    def _format(self) -> None:
        if len(self.nodes) == 1:
            quorum = ["--standalone"]
        else:
            quorum = ["--initial-controllers",
                      ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}:{n.directory_id}" for n in self.nodes)]
        formats = []
        for node in self.nodes:
            command = self._java(node, "kafka.tools.StorageTool", "format", "--cluster-id", self.cluster_id,
                                 "--config", str(node.config_path), *quorum, heap="128m")
            out = (node.directory / "logs" / "format.log").open("wb")
            formats.append((node, out, subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                        stdin=subprocess.DEVNULL)))
        for node, out, process in formats:
            code = process.wait(120)
            out.close()
            if code != 0:
                text = (node.directory / "logs" / "format.log").read_text(errors="replace")[-3000:]
                raise KafkaUnavailable(f"formatting node {node.node_id} failed (exit {code}):\n{text}")

    def _launch(self, node: KafkaNode) -> None:
        command = self._java(node, "kafka.Kafka", str(node.config_path), heap=self.heap)
        with (node.directory / "logs" / "stdout.log").open("ab") as out:
            node.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the nodes in order
                preexec_fn=_parent_death_signal(),
            )

    def _wait_for(self, node_ids: set[int], bootstrap: str, deadline: float) -> None:
        """Until the cluster's metadata, asked through `bootstrap`, lists every node of `node_ids`
        as a serving (unfenced) broker. Polls the listeners; fails at once if a node exits."""
        settings = RuntimeSettings(service="kafka-local", kafka_bootstrap_servers=bootstrap)
        nodes = [self.node(i) for i in node_ids]
        while True:
            for node in nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise KafkaUnavailable(f"Kafka node {node.node_id} exited with {node.process.returncode}:\n"
                                           f"{node.log_tail()}")
            if all(_accepts(node.broker_port) for node in nodes):
                try:
                    if node_ids <= cluster_brokers(settings, timeout_s=2.0):
                        return
                except BusError:
                    pass
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"Kafka nodes {sorted(node_ids)} did not serve in time:\n"
                                       + "".join(n.log_tail(1500) for n in nodes))
            time.sleep(0.1)  # polling the listeners, not waiting for an event

    # -- one node at a time (fault tests) ---------------------------------------------------
    def kill_node(self, node_id: int) -> None:
        """kill -9: no controlled shutdown, no flush; the cluster notices by the missing heartbeats."""
        node = self.node(node_id)
        if node.running:
            assert node.process is not None  # running means started
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(30)

    def stop_node(self, node_id: int, timeout_s: float = 30.0) -> None:
        """SIGTERM (controlled shutdown: leadership moves first), then SIGKILL after `timeout_s`."""
        _stop([self.node(node_id)], timeout_s)

    def start_node(self, node_id: int, timeout_s: float = 60.0) -> None:
        """Start a stopped or killed node again on its own data and wait until it serves."""
        node = self.node(node_id)
        if node.running:
            return
        self._launch(node)
        self._wait_for({node_id}, node.bootstrap, time.monotonic() + timeout_s)

    def close(self, timeout_s: float = 20.0) -> None:
        """Stop every node (all at once: a quorum losing members one by one would stall the last
        ones' controlled shutdown) and remove the data."""
        _stop([n for n in self.nodes if n.running], timeout_s)
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafkaCluster:
        if self.started_in_s is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(nodes: list[KafkaNode], timeout_s: float) -> None:
    running = [n for n in nodes if n.running]
    for node in running:
        assert node.process is not None  # running means started
        node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for node in running:
        assert node.process is not None  # running means started
        try:
            node.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("Kafka node %d did not stop within %.0f s: killing it", node.node_id, timeout_s)
            node.process.kill()
            node.process.wait(30)
