"""Write k8s/release, what one GKE deployment adds to the committed overlays (`make gke-release`).

    python deploy/release.py --registry R --tag T [--overlay gke|gke-keda|gke-production]
        [--mongodb-cidr CIDR,...] [--docker docker] [--kubectl kubectl] [--out k8s/release]

k8s/gke, k8s/gke-keda and k8s/gke-production include k8s/release (a kustomize Component,
git-ignored), which holds:

- the three service images and the client's (the dashboard runs it), by the digest the
  registry gave them when they were pushed (`docker image inspect`): a release deploys
  exactly what was built, whatever happens to the tag later, and `imagePullPolicy:
  IfNotPresent` can never run a stale image;
- the workers' (and the production broker's) egress to the API server, at the address the
  cluster's `kubernetes` Service leads to (its Endpoints): the workers keep their
  pod-deletion-cost current, the RabbitMQ cluster operator's nodes find each other through it;
- for gke-production, the services' egress to the MongoDB outside the cluster (MONGODB_CIDR).

Without k8s/release those overlays do not build, so `kubectl apply -k k8s/gke` alone never
deploys images that exist in no registry.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SERVICES = ("publisher", "worker", "collector")
# Every image a Deployment names: the services' and the client's (k8s/base/dashboard.yaml).
IMAGES = (*SERVICES, "client")
OVERLAYS = ("gke", "gke-keda", "gke-production")
NAMESPACE = "tunefleet"
LABELS = {"app.kubernetes.io/part-of": "tunefleet"}


class ReleaseError(Exception):
    """What is missing for a release, said so that the operator can act."""


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def image_digest(docker: str, repository: str, tag: str) -> str:
    """The digest the registry gave `repository:tag` when it was pushed."""
    out = _run(
        [docker, "image", "inspect", "--format", "{{json .RepoDigests}}", f"{repository}:{tag}"]
    )
    digests = [d for d in json.loads(out or "null") or [] if d.startswith(f"{repository}@")]
    if not digests:
        raise ReleaseError(
            f"{repository}:{tag} has no digest from {repository.split('/')[0]}: push it first "
            "(make deploy-gke builds and pushes before it writes the release)"
        )
    digest: str = digests[0].split("@", 1)[1]
    return digest


def api_server_endpoints(kubectl: str) -> list[tuple[str, int]]:
    """Where the `kubernetes` Service leads: the address and port pods reach the API server at
    (what a NetworkPolicy's egress rules see, after the Service's address is translated)."""
    out = _run([kubectl, "get", "endpoints", "kubernetes", "-n", "default", "-o", "json"])
    found = [
        (address["ip"], port["port"])
        for subset in json.loads(out).get("subsets", [])
        for address in subset.get("addresses", [])
        for port in subset.get("ports", [])
    ]
    if not found:
        raise ReleaseError(
            "the cluster's `kubernetes` Service has no endpoints: is this a cluster?"
        )
    return sorted(set(found))


def _cidr(address: str) -> str:
    return address if "/" in address else (f"{address}/128" if ":" in address else f"{address}/32")


def policies(
    overlay: str, api_server: list[tuple[str, int]], mongodb_cidrs: list[str]
) -> list[dict[str, Any]]:
    to_api = ["worker"] + (["rabbitmq"] if overlay == "gke-production" else [])
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "kube-apiserver", "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "podSelector": {
                    "matchExpressions": [
                        {"key": "app.kubernetes.io/name", "operator": "In", "values": to_api}
                    ]
                },
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": _cidr(ip)}}],
                        "ports": [{"port": port, "protocol": "TCP"}],
                    }
                    for ip, port in api_server
                ],
            },
        }
    ]
    if overlay == "gke-production":
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "mongodb-egress", "namespace": NAMESPACE, "labels": LABELS},
                "spec": {
                    "podSelector": {"matchLabels": {"tunefleet.io/store-client": "true"}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": cidr}} for cidr in mongodb_cidrs],
                            "ports": [{"port": 27017, "protocol": "TCP"}],
                        }
                    ],
                },
            }
        )
    return out


def render(
    overlay: str,
    registry: str,
    digests: dict[str, str],
    api_server: list[tuple[str, int]],
    mongodb_cidrs: list[str],
) -> dict[str, str]:
    """File name (in the release directory) -> content."""
    if overlay == "gke-production" and not mongodb_cidrs:
        raise ReleaseError(
            "gke-production: set MONGODB_CIDR to the address range of your MongoDB "
            "(its private endpoint or peering range), so that the services may reach it"
        )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["policies.yaml"],
        "images": [
            {"name": f"tunefleet-{s}", "newName": f"{registry}/tunefleet-{s}", "digest": digests[s]}
            for s in IMAGES
        ],
    }
    header = (
        f"# Written by `make gke-release` (deploy/release.py) for k8s/{overlay}; not committed.\n"
    )
    docs = policies(overlay, api_server, mongodb_cidrs)
    return {
        "kustomization.yaml": header + json.dumps(kustomization, indent=2) + "\n",
        "policies.yaml": header + "\n---\n".join(json.dumps(d, indent=2) for d in docs) + "\n",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--overlay", choices=OVERLAYS, default="gke")
    parser.add_argument("--mongodb-cidr", default="", help="comma-separated, gke-production only")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--out", type=Path, default=Path("k8s/release"))
    args = parser.parse_args(argv)
    try:
        digests = {
            s: image_digest(args.docker, f"{args.registry}/tunefleet-{s}", args.tag) for s in IMAGES
        }
        cidrs = [c.strip() for c in args.mongodb_cidr.split(",") if c.strip()]
        files = render(
            args.overlay, args.registry, digests, api_server_endpoints(args.kubectl), cidrs
        )
    except ReleaseError as exc:
        print(f"gke-release: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (args.out / name).write_text(content)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
