"""On Kubernetes, the worker's pod says how costly deleting it would be: high while it holds a
trial message, 0 while idle.

A ReplicaSet that scales down (KEDA's autoscaler, `make scale`) deletes the pods with the lowest
`controller.kubernetes.io/pod-deletion-cost` first, so idle workers go before busy ones, whose
trials would otherwise be abandoned and trained again elsewhere. The cost is an annotation on
the worker's own pod, set through the API with the pod's service account token; the manifests
give the worker a token only where they also give it the right to set that one annotation on
that one pod (k8s/components/gke/deletion-cost.yaml). Without a token (compose, local runs,
k8s/dev) nothing here runs. It is best effort: a failed update is logged and retried, and
never stops the worker.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

__all__ = ["ANNOTATION", "BUSY", "IDLE", "DeletionCost"]

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
BUSY, IDLE = 1000, 0
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

log = logging.getLogger(__name__)


class DeletionCost:
    """Keeps `pod`'s deletion cost in step with `busy()`, checked every `interval_s`."""

    def __init__(
        self,
        pod: str,
        namespace: str,
        api_server: str,
        token_file: Path,
        ca_file: Path,
        busy: Callable[[], bool],
        interval_s: float = 1.0,
    ) -> None:
        self.pod = pod
        self.url = f"{api_server}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}"
        self.token_file = token_file
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.busy = busy
        self.interval_s = interval_s
        self.sent: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def in_cluster(
        cls, pod: str, busy: Callable[[], bool], account: Path = SERVICE_ACCOUNT
    ) -> DeletionCost | None:
        """From the pod's service account, if it has one mounted; else None."""
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
        )
        token, ca, namespace = account / "token", account / "ca.crt", account / "namespace"
        if not (host and pod and token.exists() and ca.exists() and namespace.exists()):
            return None
        address = f"[{host}]" if ":" in host else host
        return cls(pod, namespace.read_text().strip(), f"https://{address}:{port}", token, ca, busy)

    def set(self, cost: int) -> None:
        """Patch the annotation (the token is read each time: the kubelet rotates it)."""
        body = json.dumps({"metadata": {"annotations": {ANNOTATION: str(cost)}}}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="PATCH",
            headers={
                "Authorization": f"Bearer {self.token_file.read_text().strip()}",
                "Content-Type": "application/merge-patch+json",
            },
        )
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            response.read()

    def update(self) -> bool:
        """One step: set the cost if it changed; False if that failed."""
        cost = BUSY if self.busy() else IDLE
        if cost == self.sent:
            return True
        try:
            self.set(cost)
        except (OSError, ValueError) as exc:
            log.warning("cannot set pod %s's deletion cost to %d: %s", self.pod, cost, exc)
            return False
        self.sent = cost
        return True

    def _run(self) -> None:
        wait = self.interval_s
        while not self._stop.wait(wait):
            # After a failure, back off (up to a minute) rather than log every second.
            wait = self.interval_s if self.update() else min(max(wait * 2, 5.0), 60.0)

    def start(self) -> None:
        self.update()
        self._thread = threading.Thread(target=self._run, name="deletion-cost", daemon=True)
        self._thread.start()
        log.info("keeping pod %s's deletion cost current (%s)", self.pod, ANNOTATION)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
