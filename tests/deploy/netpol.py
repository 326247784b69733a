"""What a set of rendered NetworkPolicies lets through, decided as the Kubernetes API defines it.

A pod is isolated for ingress (egress) once any policy with that policyType selects it; then a
connection passes if some such policy has a rule whose peers and ports match. The peers here
are the pods of the rendered workloads (in `tunefleet`) and a few stand-ins for what is around
them: the cluster DNS, GKE's managed Prometheus collectors, KEDA's operator, the RabbitMQ
cluster operator, an ingress controller whose namespace may reach the dashboard, a pod of any
other namespace, and addresses outside the cluster.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "tunefleet"


@dataclass(frozen=True)
class Peer:
    """A pod (namespace and labels) or an address outside the cluster."""

    name: str
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None
    namespace_labels: tuple[tuple[str, str], ...] = field(default=())

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def namespace_map(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace or "", **dict(self.namespace_labels)}


def pod(name: str, labels: dict[str, str], namespace: str = NAMESPACE, **ns: str) -> Peer:
    return Peer(name, namespace, tuple(sorted(labels.items())), None, tuple(sorted(ns.items())))


def address(name: str, ip: str) -> Peer:
    return Peer(name, ip=ip)


AROUND = (
    pod("kube-dns", {"k8s-app": "kube-dns"}, "kube-system"),
    pod("gmp-collector", {"app.kubernetes.io/name": "collector"}, "gmp-system"),
    pod("keda-operator", {"app.kubernetes.io/name": "keda-operator"}, "keda"),
    pod(
        "rabbitmq-operator",
        {"app.kubernetes.io/component": "rabbitmq-operator"},
        "rabbitmq-system",
    ),
    pod("another-namespace", {"app.kubernetes.io/name": "collector"}, "default"),
    # An ingress controller, in a namespace marked to reach the dashboard (networkpolicy.yaml).
    pod(
        "ingress-controller",
        {"app.kubernetes.io/name": "ingress-nginx"},
        "ingress-nginx",
        **{"tunefleet.io/reaches-dashboard": "true"},
    ),
    address("api-server", "172.16.0.2"),
    address("managed-mongodb", "10.20.0.7"),
    address("internet", "203.0.113.9"),
)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.ip is None:
            return False
        block = rule_peer["ipBlock"]
        ip = ipaddress.ip_address(peer.ip)
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.ip is not None:
        return False
    if "namespaceSelector" in rule_peer:
        if not selects(rule_peer["namespaceSelector"], peer.namespace_map):
            return False
    elif peer.namespace != NAMESPACE:
        return False
    return selects(rule_peer.get("podSelector"), peer.label_map)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        if isinstance(p["port"], int) and p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


class Policies:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]

    def _isolating(self, target: Peer, direction: str) -> list[dict[str, Any]]:
        return [
            p["spec"]
            for p in self.policies
            if p["metadata"].get("namespace", NAMESPACE) == target.namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], target.label_map)
        ]

    def allows(self, source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
        """Both ends must let it through: the source's egress and the target's ingress (for
        ends in this namespace; other namespaces' own policies are not ours)."""
        return self._passes(source, target, port, protocol, "Egress") and self._passes(
            target, source, port, protocol, "Ingress"
        )

    def _passes(self, end: Peer, other: Peer, port: int, protocol: str, direction: str) -> bool:
        if end.namespace != NAMESPACE:
            return True
        isolating = self._isolating(end, direction)
        if not isolating:
            return True
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for spec in isolating:
            for rule in spec.get(key, []):
                peers = rule.get(peers_key)  # none (or empty): every peer
                if peers and not any(_peer_matches(p, other) for p in peers):
                    continue
                if _port_matches(rule, port, protocol):
                    return True
        return False


def workload_pods(docs: list[dict[str, Any]]) -> dict[str, Peer]:
    """The pods of the rendered workloads, and the RabbitMQ cluster operator's broker pods."""
    out = {}
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            name = doc["metadata"]["name"]
            out[name] = pod(name, doc["spec"]["template"]["metadata"]["labels"])
        if doc["kind"] == "RabbitmqCluster":
            name = doc["metadata"]["name"]
            # What the operator labels its pods with (internal/metadata/label.go).
            labels = {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/component": "rabbitmq",
                "app.kubernetes.io/part-of": "rabbitmq",
            }
            out[name] = pod(name, labels)
    return out
