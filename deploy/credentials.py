"""Write the kustomize secret inputs from `.env`: `deploy/credentials.py [--local] [.env] [k8s]`.

`.env` holds two administrators: RABBITMQ_USER/RABBITMQ_PASSWORD (the broker's) and
MONGO_USER/MONGO_PASSWORD (MongoDB's root), the same four values docker-compose.yml reads. The
services do not use them: each service gets a user of its own on the broker and on the
database, with the rights it needs, and so does the dashboard (it reads the database; on the
broker it follows the events, reads the dead letters and publishes cancels and resumes), and
KEDA a user that can read queue lengths and nothing else. Their passwords are derived from the
administrator's (HMAC-SHA256, so the same .env always gives the same Secrets, and a service's
password does not reveal the administrator's);
changing an administrator's password in .env changes them all at the next deploy.

Written under k8s/ (all git-ignored):

- base/credentials/<service>.env          RABBITMQ_URL and MONGODB_URL of the service's users
                                          (and dashboard.env, the dashboard's)
- components/rabbitmq/credentials/definitions.json
                                          every broker user (salted password hash), its
                                          permissions and the virtual host, imported by the
                                          broker at every start
- components/rabbitmq-cluster/credentials/ the same definitions, and the administrator as the
                                          RabbitMQ cluster operator's default user
- components/mongodb/credentials/mongodb.env  the root user, the services' users (readWrite)
                                          and the dashboard's (read) for users.js
- components/keda-workers/credentials/management.env  the management API URL of KEDA's user

Where the broker and the database are: RABBITMQ_ADDRESS (default amqp://rabbitmq:5672/%2F),
RABBITMQ_MANAGEMENT_ADDRESS (default http://rabbitmq.tunefleet.svc:15672/%2F) and
MONGODB_ADDRESS (default mongodb://mongodb:27017/?authSource=admin), URLs without credentials:
the in-cluster Services unless .env says otherwise (a managed MongoDB in production).

The example passwords of .env.example, and any password under 16 characters, are refused unless
`--local` says the cluster is a local one (`make dev`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from tunefleet_contract.topology import Topology, declare

REQUIRED = ("RABBITMQ_USER", "RABBITMQ_PASSWORD", "MONGO_USER", "MONGO_PASSWORD")
PASSWORDS = ("RABBITMQ_PASSWORD", "MONGO_PASSWORD")
EXAMPLE_PREFIX = "change-me"
MIN_PASSWORD = 16
DEFAULT_ADDRESSES = {
    "RABBITMQ_ADDRESS": "amqp://rabbitmq:5672/%2F",
    "RABBITMQ_MANAGEMENT_ADDRESS": "http://rabbitmq.tunefleet.svc:15672/%2F",
    "MONGODB_ADDRESS": "mongodb://mongodb:27017/?authSource=admin",
}
SERVICES = ("publisher", "worker", "collector")
# Pods with users of their own that only read the database.
READERS = ("dashboard",)
ACCOUNTS = (*SERVICES, *READERS)
# RabbitMQ's default password hashing (rabbit_password_hashing_sha256).
HASHING = "rabbit_password_hashing_sha256"


@dataclass(frozen=True)
class Role:
    """What a service does on the broker besides declaring the topology: the queues it consumes
    (Topology attribute names), the exchanges it publishes to, and whether it watches the events
    exchange through a queue of its own (`declare_watch_queue`: server-named, `amq.gen-...`)."""

    consumes: tuple[str, ...]
    publishes: tuple[str, ...]
    watches: bool = False


# The server's names for a queue declared without one: only the broker makes them (a client
# may not declare an `amq.` name), and an exclusive one only its own connection can use.
WATCH_QUEUES = r"amq\.gen-.*"


# Every service publishes events and dead-letters what it refuses (tunefleet_runtime.broker).
ROLES = {
    "publisher": Role(
        consumes=("studies_queue", "planner_queue"),
        publishes=("trials_exchange", "events_exchange", "dead_letter_exchange"),
    ),
    "worker": Role(
        consumes=("trials_queue", "control_queue"),
        publishes=("events_exchange", "dead_letter_exchange"),
    ),
    "collector": Role(
        consumes=("events_queue", "dead_letter_collector_queue"),
        publishes=("events_exchange", "dead_letter_exchange"),
    ),
    # tunefleet.dashboard: follows the events, lists the dead letters (basic_get, never acked:
    # they stay), and cancels (an event) and resumes (a study request) as the CLI does.
    "dashboard": Role(
        consumes=("dead_letter_queue",),
        publishes=("events_exchange", "studies_exchange"),
        watches=True,
    ),
}


class CredentialsError(SystemExit):
    """Exit 2 with a message naming what is wrong in the env file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise CredentialsError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def check(values: dict[str, str], *, local: bool) -> None:
    missing = [key for key in REQUIRED if not values.get(key)]
    if missing:
        raise CredentialsError(f"missing in the env file: {', '.join(missing)} (see .env.example)")
    if any("\n" in value for value in values.values()):
        raise CredentialsError("values must be single lines")
    if local:
        return
    weak = []
    for key in PASSWORDS:
        password = values[key]
        if password.lower().startswith(EXAMPLE_PREFIX):
            weak.append(f"{key} is .env.example's ({password})")
        elif len(password) < MIN_PASSWORD:
            weak.append(f"{key} has {len(password)} characters, fewer than {MIN_PASSWORD}")
    if weak:
        raise CredentialsError(
            "refusing to write credentials for a cluster: "
            + "; ".join(weak)
            + ". Set real passwords in .env (openssl rand -hex 24); only a local cluster "
            "(make dev, or --local) accepts the examples."
        )


def derive(secret: str, label: str) -> str:
    """A password for `label`, from an administrator's password (HMAC-SHA256, 40 hex digits)."""
    digest = hmac.new(secret.encode(), f"tunefleet:{label}".encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


def rabbitmq_password_hash(password: str, salt: bytes) -> str:
    """What RabbitMQ stores (rabbit_password_hashing_sha256): salt + SHA-256(salt + password)."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass
class _Declared:
    """The permissions `declare` needs, recorded from a channel that only takes notes.

    RabbitMQ asks for configure on what is declared; for a queue with a dead-letter exchange,
    read on the queue and write on that exchange; for a binding, write on the queue and read
    on the exchange."""

    configure: set[str] = field(default_factory=set)
    write: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)

    def exchange_declare(self, exchange: str, **_: Any) -> None:
        self.configure.add(exchange)

    def queue_declare(self, queue: str, arguments: dict[str, Any] | None = None, **_: Any) -> None:
        self.configure.add(queue)
        dlx = (arguments or {}).get("x-dead-letter-exchange")
        if dlx:
            self.read.add(queue)
            self.write.add(dlx)

    def queue_bind(self, queue: str, exchange: str, **_: Any) -> None:
        self.write.add(queue)
        self.read.add(exchange)


def _exactly(names: Iterable[str], *patterns: str) -> str:
    exact = sorted(n.replace(".", r"\.") for n in set(names))
    return "^(" + "|".join([*exact, *patterns]) + ")$"


def broker_permissions(namespace: str) -> dict[str, dict[str, str]]:
    """Each service's permissions: what declaring the whole topology needs (every process
    declares it when it connects), the queues it consumes and the exchanges it publishes to;
    nothing outside the namespace's own names."""
    topology = Topology(namespace)
    declared = _Declared()
    declare(declared, topology)
    permissions = {}
    for service, role in ROLES.items():
        # A watch queue: declared (configure), bound (write on it, read on the events
        # exchange) and consumed (read).
        watch = (WATCH_QUEUES,) if role.watches else ()
        read = declared.read | {getattr(topology, q) for q in role.consumes}
        if role.watches:
            read.add(topology.events_exchange)
        permissions[service] = {
            "configure": _exactly(declared.configure, *watch),
            "write": _exactly(
                declared.write | {getattr(topology, e) for e in role.publishes}, *watch
            ),
            "read": _exactly(read, *watch),
        }
    return permissions


def _with_credentials(address: str, user: str, password: str) -> str:
    parts = urlsplit(address)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _config(k8s: Path, name: str, key: str, default: str) -> str:
    """A value of k8s/base/config/<name> (the ConfigMaps the services read)."""
    path = k8s / "base" / "config" / name
    if path.exists():
        return read_env_file(path).get(key, default)
    return default


def users(namespace: str) -> dict[str, str]:
    """The user name of each service, the dashboard's and KEDA's, on the broker and on the
    database."""
    return {role: f"{namespace}-{role}" for role in (*ACCOUNTS, "keda")}


def render(values: dict[str, str], k8s: Path) -> dict[str, str]:
    """File (relative to k8s/) -> its content."""
    namespace = _config(k8s, "common.env", "TUNEFLEET_NAMESPACE", "tunefleet")
    database = _config(k8s, "store.env", "MONGODB_DATABASE", "tunefleet")
    addresses = {key: values.get(key) or default for key, default in DEFAULT_ADDRESSES.items()}
    admin, admin_password = values["RABBITMQ_USER"], values["RABBITMQ_PASSWORD"]
    root, root_password = values["MONGO_USER"], values["MONGO_PASSWORD"]
    names = users(namespace)
    broker = {role: derive(admin_password, f"rabbitmq/{name}") for role, name in names.items()}
    store = {s: derive(root_password, f"mongodb/{names[s]}") for s in ACCOUNTS}

    files: dict[str, str] = {}
    for service in ACCOUNTS:
        urls = {
            "RABBITMQ_URL": _with_credentials(
                addresses["RABBITMQ_ADDRESS"], names[service], broker[service]
            ),
            "MONGODB_URL": _with_credentials(
                addresses["MONGODB_ADDRESS"], names[service], store[service]
            ),
        }
        files[f"base/credentials/{service}.env"] = _env(urls)

    vhost = unquote(urlsplit(addresses["RABBITMQ_ADDRESS"]).path.removeprefix("/")) or "/"
    definitions = json.dumps(
        rabbitmq_definitions(admin, admin_password, names, broker, namespace, vhost), indent=2
    )
    files["components/rabbitmq/credentials/definitions.json"] = definitions + "\n"
    files["components/rabbitmq-cluster/credentials/definitions.json"] = definitions + "\n"
    management = urlsplit(addresses["RABBITMQ_MANAGEMENT_ADDRESS"])
    files["components/rabbitmq-cluster/credentials/admin.env"] = _env(
        {
            "username": admin,
            "password": admin_password,
            "host": management.hostname or "rabbitmq",
            "port": str(urlsplit(addresses["RABBITMQ_ADDRESS"]).port or 5672),
            "provider": "rabbitmq",
            "type": "rabbitmq",
        }
    )
    files["components/rabbitmq-cluster/credentials/default_user.conf"] = (
        f"default_user = {admin}\ndefault_pass = {admin_password}\n"
    )
    files["components/mongodb/credentials/mongodb.env"] = _env(
        {
            "MONGO_INITDB_ROOT_USERNAME": root,
            "MONGO_INITDB_ROOT_PASSWORD": root_password,
            "MONGODB_DATABASE": database,
            "TUNEFLEET_MONGODB_USERS": ",".join(f"{names[s]}={store[s]}" for s in SERVICES),
            "TUNEFLEET_MONGODB_READERS": ",".join(f"{names[s]}={store[s]}" for s in READERS),
        }
    )
    files["components/keda-workers/credentials/management.env"] = _env(
        {
            "host": _with_credentials(
                addresses["RABBITMQ_MANAGEMENT_ADDRESS"], names["keda"], broker["keda"]
            )
        }
    )
    return files


def rabbitmq_definitions(
    admin: str,
    admin_password: str,
    names: dict[str, str],
    passwords: dict[str, str],
    namespace: str,
    vhost: str,
) -> dict[str, Any]:
    """The broker's users and permissions, in RabbitMQ's definitions format.

    The administrator (people, the CLI through a port-forward) may do anything; each service
    and the dashboard what `broker_permissions` says; KEDA may look at queues through the
    management API (the `management` tag needs a permission entry on the virtual host) and use
    none of them."""

    def user(name: str, password: str, tags: list[str]) -> dict[str, Any]:
        # A salt derived like the password: the same .env gives the same file, and the same
        # Secret, so an unchanged deploy restarts nothing.
        salt = bytes.fromhex(derive(admin_password, f"rabbitmq-salt/{name}")[:8])
        return {
            "name": name,
            "password_hash": rabbitmq_password_hash(password, salt),
            "hashing_algorithm": HASHING,
            "tags": tags,
            "limits": {},
        }

    nothing = {"configure": "^$", "write": "^$", "read": "^$"}
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    services = broker_permissions(namespace)
    return {
        "users": [
            user(admin, admin_password, ["administrator"]),
            *(user(names[s], passwords[s], []) for s in ACCOUNTS),
            user(names["keda"], passwords["keda"], ["management"]),
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": admin, "vhost": vhost, **everything},
            *({"user": names[s], "vhost": vhost, **services[s]} for s in ACCOUNTS),
            {"user": names["keda"], "vhost": vhost, **nothing},
        ],
    }


def _env(pairs: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in pairs.items())


def write(env_file: Path, k8s: Path, *, local: bool = False) -> list[Path]:
    values = read_env_file(env_file)
    check(values, local=local)
    written = []
    for name, content in render(values, k8s).items():
        target = k8s / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o600)
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_file", nargs="?", default=".env", type=Path)
    parser.add_argument("k8s", nargs="?", default="k8s", type=Path)
    parser.add_argument(
        "--local", action="store_true", help="a local cluster (make dev): example passwords pass"
    )
    args = parser.parse_args(argv)
    if not args.env_file.exists():
        print(
            f"{args.env_file} not found: copy .env.example to .env and set passwords",
            file=sys.stderr,
        )
        return 2
    try:
        written = write(args.env_file, args.k8s, local=args.local)
    except CredentialsError as exc:
        print(exc.code, file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
