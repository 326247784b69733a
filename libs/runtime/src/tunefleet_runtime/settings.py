"""Typed settings, read once per process from the environment.

Every service builds exactly one of these at start-up. Credentials live inside the URLs and have
no default here: the only default credentials are those of the local development services that
`tunefleet_dev.devservices` starts itself, and it passes them explicitly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyUrl, Field, SecretStr, UrlConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from tunefleet_contract.cost import Pool, PriceTable

AmqpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["amqp", "amqps"])]
MongoUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["mongodb", "mongodb+srv"])]

__all__ = [
    "BrokerSettings",
    "ClientSettings",
    "CollectorSettings",
    "DashboardSettings",
    "PublisherSettings",
    "ServiceSettings",
    "StoreSettings",
    "WorkerSettings",
]


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)


class BrokerSettings(_Base):
    """What every process that talks to RabbitMQ needs."""

    rabbitmq_url: AmqpUrl = Field(description="amqp://user:password@host:port/vhost")
    tunefleet_namespace: str = Field(
        default="tunefleet",
        pattern=r"^[a-z][a-z0-9-]{0,40}$",
        description="Prefix of every exchange and queue, so several installations share a broker.",
    )
    tunefleet_delivery_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Deliveries of one trial message before it is dead-lettered (preemptions).",
    )
    tunefleet_heartbeat_s: int = Field(default=30, ge=1, le=600)
    tunefleet_max_message_bytes: int = Field(default=1_000_000, ge=1_024, le=128_000_000)
    tunefleet_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of /livez, /readyz and /metrics (runtime observability); 0 = off.",
    )


_DATABASE = Field(default="tunefleet", pattern=r"^[A-Za-z0-9_-]{1,60}$")
_MAX_DATASET = Field(
    default=4 << 30,
    ge=1,
    le=1 << 40,
    description="Largest dataset that is uploaded (client) or fetched (worker), in bytes.",
)


# The longest any one store call (or a service's run of calls between two turns of its broker
# loop, `store.bounded`) may take before it fails as an outage: a stalled store (a hung disk, a
# paused VM, a lost packet) then costs a logged, retried timeout, never a silent wait.
_STORE_TIMEOUT = Field(
    default=10.0,
    gt=0,
    le=300,
    description="Seconds a store call may take before it fails and is retried (store outage).",
)


class StoreSettings(_Base):
    """What every process that reads MongoDB needs."""

    mongodb_url: MongoUrl
    mongodb_database: str = _DATABASE
    tunefleet_max_dataset_bytes: int = _MAX_DATASET
    tunefleet_store_timeout_s: float = _STORE_TIMEOUT


class _StoreOnTheBrokerThread(BrokerSettings, StoreSettings):
    """A service that calls the store on its broker connection's thread (the collector, the
    planner): pika sends no heartbeat while that thread waits on the store, and the broker
    drops a connection that has sent none for TUNEFLEET_HEARTBEAT_S. pika sends one every
    half of it, so a wait of up to the other half costs nothing; `store.bounded` keeps every
    wait within TUNEFLEET_STORE_TIMEOUT_S, which must therefore stay under half."""

    @model_validator(mode="after")
    def _store_waits_fit_between_heartbeats(self) -> _StoreOnTheBrokerThread:
        if self.tunefleet_store_timeout_s * 2 >= self.tunefleet_heartbeat_s:
            raise ValueError(
                f"TUNEFLEET_STORE_TIMEOUT_S={self.tunefleet_store_timeout_s:g} must be under "
                f"half of TUNEFLEET_HEARTBEAT_S={self.tunefleet_heartbeat_s} "
                f"({self.tunefleet_heartbeat_s / 2:g} s): this service waits on the store on "
                "its broker connection's thread, which sends no heartbeat meanwhile, and the "
                "broker drops a connection silent for TUNEFLEET_HEARTBEAT_S; lower the store "
                "timeout or raise the heartbeat"
            )
        return self


class ServiceSettings(_Base):
    """What every long-running service reads besides its connections."""

    tunefleet_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level of the JSON log lines on stderr."
    )

    @field_validator("tunefleet_log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class PublisherSettings(_StoreOnTheBrokerThread, ServiceSettings):
    """The planner: a resume's plan depends on the results the store holds."""

    tunefleet_publish_batch: int = Field(
        default=500, ge=1, le=100_000, description="Messages published per confirm wait."
    )
    tunefleet_max_trials: int = Field(
        default=1_000_000,
        ge=1,
        description="Largest study accepted without allow_large in the spec.",
    )


class WorkerSettings(BrokerSettings, ServiceSettings):
    tunefleet_worker_threads: int = Field(default=1, ge=1, le=256)
    tunefleet_max_worker_threads: int = Field(
        default=64, ge=1, le=1024, description="Highest n_jobs a spec may ask for."
    )
    tunefleet_grace_period_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="How long SIGTERM waits for the trial in hand before handing it back.",
    )
    tunefleet_checkpoint_min_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="A finished fold whose training took less is not checkpointed: training "
        "it again costs less than its record.",
    )
    tunefleet_round_checkpoint_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        le=2**40,
        description="With checkpoint: rounds, a booster cut on a stop is stored up to this "
        "size; a larger one is not (the trial resumes at its fold instead).",
    )
    tunefleet_data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Colon-separated directories that file datasets may be read from.",
    )
    tunefleet_worker_name: str = Field(default="", max_length=200)
    tunefleet_node_pool: Pool = Field(
        default="on-demand",
        description="The pool of the node this worker runs on (spot or on-demand), which its "
        "results name for the cost ledger; in Kubernetes set where the pod is placed.",
    )
    # Uploaded datasets and refits need the store (blobs only: results still go through the
    # broker to the collector); a worker without it runs every other study.
    mongodb_url: MongoUrl | None = None
    mongodb_database: str = _DATABASE
    tunefleet_max_dataset_bytes: int = _MAX_DATASET
    # Blobs are read on the trial's thread, not the connection's: no relation to the heartbeat.
    tunefleet_store_timeout_s: float = _STORE_TIMEOUT
    tunefleet_cache_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "tunefleet-cache",
        description="Where fetched datasets are kept between trials and processes.",
    )
    tunefleet_cache_bytes: int = Field(
        default=8 << 30, ge=1 << 20, description="Size bound of the dataset cache, in bytes."
    )

    @field_validator("tunefleet_data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(p).resolve() for p in value.split(":") if p]
        return value


class CollectorSettings(_StoreOnTheBrokerThread, ServiceSettings):
    tunefleet_collector_batch: int = Field(default=500, ge=1, le=50_000)
    tunefleet_collector_flush_s: float = Field(default=0.2, gt=0, le=60)
    # How long a revision's registration may wait for the rest of its plan (in another
    # collector's hands) before it is set aside as a dead letter, so that the events behind it
    # are not held up for good by a plan that never comes.
    tunefleet_plan_wait_s: float = Field(default=120.0, gt=0, le=3600)


class ClientSettings(BrokerSettings, StoreSettings):
    """The CLI and the Python API: submit through the broker, read from the store."""

    tunefleet_prices: Annotated[PriceTable | None, NoDecode] = Field(
        default=None,
        description="Price per core-hour of each pool, `spot=0.012,on-demand=0.049` (and "
        "optionally `,currency=EUR`): what the cost ledger and cost budgets count money by.",
    )

    @field_validator("tunefleet_prices", mode="before")
    @classmethod
    def _parse_prices(cls, value: object) -> object:
        if isinstance(value, str):
            return PriceTable.parse(value) if value.strip() else None
        return value


class DashboardSettings(ClientSettings):
    """`tunefleet dashboard`: the client's settings, and where it listens. Without a token it
    is read-only; cancel and resume need TUNEFLEET_DASHBOARD_TOKEN (no default: `make
    dashboard` makes one for the local services and prints it)."""

    tunefleet_dashboard_host: str = Field(
        default="127.0.0.1", description="Bind address; 0.0.0.0 only behind a network policy"
    )
    tunefleet_dashboard_port: int = Field(default=8765, ge=0, le=65535)
    tunefleet_dashboard_token: SecretStr | None = Field(default=None, min_length=16)
    tunefleet_dashboard_max_results: int = Field(
        default=1_000_000,
        ge=1,
        description="Results the studies kept in memory hold together (the least recently "
        "shown study goes first; about 5 KB each with what is computed from them)",
    )

    @field_validator("tunefleet_dashboard_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # Compose passes an unset `${TUNEFLEET_DASHBOARD_TOKEN:-}` as "": no token, read-only.
        return None if isinstance(value, str) and not value.strip() else value
