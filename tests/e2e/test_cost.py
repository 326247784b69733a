"""The cost ledger and study budgets, through the three services as separate processes."""

from __future__ import annotations

import json

import pytest
from tunefleet.client import Client
from tunefleet_contract.cost import PriceTable
from tunefleet_dev.devservices import Pipeline
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store.mongo import connect_store

from tests.support.cli import cli
from tests.support.studies import noop_spec
from tests.support.waiting import wait_until

PRICES = "spot=0.0118,on-demand=0.0486"


@pytest.mark.timeout(300)
def test_the_ledger_is_the_sum_of_the_stored_core_seconds_at_the_prices(
    service_env: dict[str, str],
    pipeline: Pipeline,
    settings: ClientSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two workers on two pools, two threads each: the ledger prices each result by its pool.
    pipeline.start("collector")
    pipeline.start("publisher")
    pipeline.start("worker", "worker-1", TUNEFLEET_NODE_POOL="spot", TUNEFLEET_WORKER_THREADS="2")
    pipeline.start("worker", "worker-2", TUNEFLEET_WORKER_THREADS="2")
    monkeypatch.setenv("TUNEFLEET_PRICES", PRICES)
    client = Client(settings.model_copy(update={"tunefleet_prices": PriceTable.parse(PRICES)}))
    study = client.submit(noop_spec("ledger", 8, 0.2))
    client.wait(study, timeout_s=240)

    docs = list(connect_store(settings).trials.find({"study_id": study}))
    assert len(docs) == 8
    # Each trial slept 0.2 s on 2 cores: at least 0.4 core-seconds.
    assert all(d["core_s"] >= 0.4 for d in docs)
    pools = {d["worker"]: d["pool"] for d in docs}
    assert pools.get("worker-1", "spot") == "spot"
    assert pools.get("worker-2", "on-demand") == "on-demand"
    prices = {"spot": 0.0118, "on-demand": 0.0486}
    core_s = sum(d["core_s"] for d in docs)
    money = sum(d["core_s"] / 3600 * prices[d["pool"]] for d in docs)

    ledger = client.cost(study)
    assert ledger.total.core_s == pytest.approx(core_s, rel=1e-12)
    assert ledger.total.money == pytest.approx(money, rel=1e-12)
    assert sum(line.core_s for line in ledger.trials) == pytest.approx(core_s, rel=1e-12)

    shown = json.loads(cli("cost", study, "--json").stdout)
    assert shown["total"]["core_s"] == pytest.approx(core_s, rel=1e-12)
    assert shown["total"]["cost"] == pytest.approx(money, rel=1e-12)
    assert shown["currency"] == "USD" and shown["state"] == "complete"
    assert len(shown["trials"]) == 8
    assert shown["improvement"]["best_score"] == 0.07
    status = json.loads(cli("status", study, "--json").stdout)
    assert status["core_s"] == pytest.approx(core_s, rel=1e-9)
    assert "spent" in cli("cost", study).stdout


@pytest.mark.timeout(300)
def test_a_budgeted_study_stops_within_one_batch_of_its_budget(
    service_env: dict[str, str], pipeline: Pipeline, settings: ClientSettings
) -> None:
    # 40 trials of 0.5 s on one core, one per trial message; a budget of about 4 of them.
    chunk = 1
    budget_s = 2.0
    spec = noop_spec("budget", 40, 0.5, chunk_size=chunk, budget={"core_hours": budget_s / 3600})
    pipeline.start_all(workers=1)
    client = Client(settings)
    study = client.submit(spec)
    status = client.wait(study, timeout_s=240)
    assert str(status.state) == "budget spent" and status.budget_spent
    assert status.failed == 0 and 0 < status.done < 40

    db = connect_store(settings)

    def started_have_results() -> bool:
        started = {d["trial_id"] for d in db.starts.find({"study_id": study}, {"trial_id": 1})}
        stored = {d["_id"] for d in db.trials.find({"study_id": study}, {"_id": 1})}
        return (
            started <= stored
            and db.studies.find_one({"_id": study, "cancelled_at": {"$ne": None}}) is not None
        )

    # The stop is seen on the event stream first; the store has it, and every result, soon.
    wait_until(started_have_results, what="the trials in hand to finish", timeout=60)
    docs = sorted(db.trials.find({"study_id": study}), key=lambda d: d["finished_at"])
    spent = 0.0
    crossed = None
    for i, doc in enumerate(docs):
        spent += doc["core_s"]
        if spent >= budget_s and crossed is None:
            crossed = i
    assert crossed is not None, "the study stopped before its budget was spent"
    # What ran after the result that spent it: at most one batch, the trial message the
    # worker took (prefetch 1) before the planner's stop reached it.
    assert len(docs) - 1 - crossed <= chunk
    record = client.study_record(study)
    assert record.cancelled_by == "planner"
    assert record.cancel_reason is not None and record.cancel_reason.startswith("budget spent")
    # The CLI says so, and a spent budget is no failure: --wait's exit code is 0.
    ledger = json.loads(cli("cost", study, "--json").stdout)
    assert ledger["state"] == "budget spent" and ledger["budget_used"] >= 1.0
