"""Write the kustomize secret inputs from `.env`: `python deploy/credentials.py [.env] [k8s]`.

The same four values as docker-compose.yml (RABBITMQ_USER, RABBITMQ_PASSWORD, MONGO_USER,
MONGO_PASSWORD) become, under k8s/ (git-ignored):

- base/credentials/rabbitmq.env   the broker's own user (RABBITMQ_DEFAULT_USER/PASS)
- base/credentials/mongodb.env    MongoDB's root user (MONGO_INITDB_ROOT_USERNAME/PASSWORD)
- base/credentials/broker.env     RABBITMQ_URL, for every service
- base/credentials/store.env      MONGODB_URL, for the collector and the workers
- components/keda-workers/credentials/management.env   the management API URL, for KEDA

Passwords are percent-encoded into the URLs, so any character works.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

REQUIRED = ("RABBITMQ_USER", "RABBITMQ_PASSWORD", "MONGO_USER", "MONGO_PASSWORD")
# The in-cluster (and in-compose) service names of the broker and the database.
RABBITMQ_HOST = "rabbitmq"
MONGODB_HOST = "mongodb"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise SystemExit(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def render(values: dict[str, str]) -> dict[str, dict[str, str]]:
    """File name (relative to k8s/) -> its KEY=VALUE pairs."""
    missing = [key for key in REQUIRED if not values.get(key)]
    if missing:
        raise SystemExit(f"missing in the env file: {', '.join(missing)} (see .env.example)")
    ruser, rpass = quote(values["RABBITMQ_USER"], safe=""), quote(values["RABBITMQ_PASSWORD"], "")
    muser, mpass = quote(values["MONGO_USER"], safe=""), quote(values["MONGO_PASSWORD"], safe="")
    return {
        "base/credentials/rabbitmq.env": {
            "RABBITMQ_DEFAULT_USER": values["RABBITMQ_USER"],
            "RABBITMQ_DEFAULT_PASS": values["RABBITMQ_PASSWORD"],
        },
        "base/credentials/mongodb.env": {
            "MONGO_INITDB_ROOT_USERNAME": values["MONGO_USER"],
            "MONGO_INITDB_ROOT_PASSWORD": values["MONGO_PASSWORD"],
        },
        "base/credentials/broker.env": {
            "RABBITMQ_URL": f"amqp://{ruser}:{rpass}@{RABBITMQ_HOST}:5672/%2F",
        },
        "base/credentials/store.env": {
            "MONGODB_URL": f"mongodb://{muser}:{mpass}@{MONGODB_HOST}:27017/?authSource=admin",
        },
        "components/keda-workers/credentials/management.env": {
            "host": f"http://{ruser}:{rpass}@{RABBITMQ_HOST}.tunefleet.svc:15672/%2F",
        },
    }


def write(env_file: Path, k8s: Path) -> list[Path]:
    written = []
    for name, pairs in render(read_env_file(env_file)).items():
        target = k8s / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if any("\n" in v for v in pairs.values()):
            raise SystemExit(f"{env_file}: values must be single lines")
        target.write_text("".join(f"{k}={v}\n" for k, v in pairs.items()))
        target.chmod(0o600)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    env_file = Path(argv[0] if argv else ".env")
    k8s = Path(argv[1] if len(argv) > 1 else "k8s")
    if not env_file.exists():
        print(f"{env_file} not found: copy .env.example to .env and set passwords", file=sys.stderr)
        return 2
    for path in write(env_file, k8s):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
