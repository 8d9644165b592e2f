"""A Kafka cluster of several KRaft nodes on loopback ports, from the project's own jars (`jars/kafka`).

Each node is a broker and a controller (combined mode) of one static quorum, with the replication a real
cluster runs: every topic gets one replica per node by default and `min.insync.replicas` 2, so losing one node
of three loses nothing. A node is the project's `LocalKafkaBroker` with its own node id, the quorum's voters and
the shared cluster id.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_runtime.broker import HOST, BrokerSettings, LocalKafkaBroker, free_port, new_cluster_id, server_properties
from tests.support.processes import JARS_DIR


class ClusterNode(LocalKafkaBroker):
    def __init__(
        self, settings: BrokerSettings, node_id: int, cluster_id: str, controller_port: int, voters: str, replicas: int
    ) -> None:
        super().__init__(settings)
        self.node_id, self.cluster_id, self.controller_port = node_id, cluster_id, controller_port
        self.voters, self.replicas = voters, replicas

    def _cluster_identity(self) -> tuple[str, int]:
        return self.cluster_id, self.controller_port

    def _properties(self, log_dir: Path, port: int, controller_port: int, users: dict[str, str]) -> str:
        return server_properties(
            log_dir, port, controller_port, users, node_id=self.node_id, voters=self.voters, replicas=self.replicas
        )

    def _format_options(self) -> list[str]:
        return []  # a static quorum: `controller.quorum.voters` names every controller


@contextmanager
def kafka_cluster(
    root: Path, nodes: int = 3, heap: str = "384m", sasl_users: dict[str, str] | None = None
) -> Iterator[list[ClusterNode]]:
    """Start `nodes` nodes together (a node is ready once the quorum has a leader and it is registered), yield
    them (`bootstrap(nodes)` for the clients), stop every one still running at the end. With `sasl_users` every
    node's client listener asks for a SASL/PLAIN login, and the brokers log in to each other as the first user."""
    cluster_id = new_cluster_id()
    taken: list[int] = []
    for _ in range(2 * nodes):  # a controller and a client port per node, all different
        taken.append(free_port(avoid=taken))
    controllers, clients = taken[:nodes], taken[nodes:]
    voters = ",".join(f"{i + 1}@{HOST}:{port}" for i, port in enumerate(controllers))
    members = [
        ClusterNode(
            BrokerSettings(
                _env_file=None,
                data_dir=root / f"node-{i + 1}",
                jars_dir=JARS_DIR,
                port=clients[i],
                heap=heap,
                start_timeout=180,
                stop_timeout=10,  # the last nodes standing cannot shut down in order without a quorum
                sasl_users=sasl_users or {},
            ),
            i + 1,
            cluster_id,
            controllers[i],
            voters,
            nodes,
        )
        for i in range(nodes)
    ]
    failures: list[BaseException] = []

    def start(node: ClusterNode) -> None:
        try:
            node.start()
        except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in members]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        yield members
    finally:
        stopping = [threading.Thread(target=node.stop) for node in members]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


def bootstrap(nodes: list[ClusterNode]) -> str:
    """Every node's client address: a client that finds one node down asks the next."""
    return ",".join(f"{HOST}:{node.settings.port}" for node in nodes)
