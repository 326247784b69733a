"""The cost ledger's parts: prices, budgets, what a result carries, the worker's share of a
family's time, the ledger's sums and the planner's budget count (pure logic)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tunefleet.client import Client
from tunefleet.cost import (
    improvement,
    ledger,
    preemption_waste,
    prices_for,
    wasted_core_seconds,
    wasted_seconds,
)
from tunefleet_contract.cost import BudgetSpec, PriceTable, is_budget_stop, spent
from tunefleet_contract.messages import (
    DecodeError,
    StudyCancelled,
    StudyRequest,
    TrialResult,
    TrialSpec,
)
from tunefleet_contract.spec import SpecError, StudySpec
from tunefleet_publisher.budget import Budgets
from tunefleet_runtime.records import (
    FoldRecord,
    RoundRecord,
    StudyActivity,
    StudyRecord,
    StudyState,
    TrialRecord,
    TrialStart,
    study_state,
)
from tunefleet_runtime.settings import ClientSettings, WorkerSettings
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec
from tunefleet_worker.ledger import carried_seconds, charged, cores_for
from tunefleet_worker.training import FoldDone, RoundSaved

PRICES = PriceTable(per_core_hour={"spot": 0.01, "on-demand": 0.04})
SPEC: dict[str, Any] = {
    "name": "c",
    "dataset": "iris",
    "search": {"noop": {"grid": {"score": [0.1, 0.2]}}},
}
URLS = {"rabbitmq_url": "amqp://h", "mongodb_url": "mongodb://h"}


def tid(i: int) -> str:
    return f"{i:024x}"


def record(i: int, core_s: float | None, pool: str | None = "spot", **kw: Any) -> TrialRecord:
    fields: dict[str, Any] = {
        "trial_id": tid(i),
        "study_id": "c-1",
        "library": "noop",
        "params": {"score": i},
        "status": "done",
        "revision": 0,
        "finished_at": float(i),
        "score": float(i),
        "core_s": core_s,
        "pool": pool,
    }
    return TrialRecord(**{**fields, **kw})


def result(i: int, core_s: float, pool: str = "spot", revision: int = 0) -> TrialResult:
    trial = TrialSpec(trial_id=tid(i), library="noop", params={"score": 0.1})
    return TrialResult.of(
        "c-1", trial, revision=revision, attempts=1, status="done", core_s=core_s, pool=pool
    )


def study_record(spec: dict[str, Any], **kw: Any) -> StudyRecord:
    return StudyRecord(
        study_id="c-1",
        spec=StudySpec.model_validate(spec),
        n_trials=2,
        revision=0,
        submitted_at=0.0,
        **kw,
    )


# -- prices ------------------------------------------------------------------------------------


def test_a_price_table_parses_from_the_environment_form() -> None:
    table = PriceTable.parse("spot=0.012, on-demand=0.049,currency=EUR")
    assert table.per_core_hour == {"spot": 0.012, "on-demand": 0.049}
    assert table.currency == "EUR"
    assert table.money(7200, "spot") == pytest.approx(0.024)
    assert table.money(3600, None) == pytest.approx(0.049)  # no pool: priced as on-demand


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("spot=0.01,on-demand=0.04,gpu=2", "unknown pool 'gpu'"),
        ("spot=-0.01,on-demand=0.04", "'spot' must be a finite number >= 0"),
        ("spot=0.01", "no price for pool on-demand"),
        ("spot=cheap,on-demand=0.04", "'spot' is not a number"),
        ("spot", "is not POOL=PRICE"),
        ("spot=nan,on-demand=0.04", "'spot' must be a finite number"),
    ],
)
def test_a_bad_price_table_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        PriceTable.parse(text)


def test_settings_read_the_price_table_and_the_pool_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFLEET_PRICES", "spot=0.01,on-demand=0.04")
    assert ClientSettings(**URLS).tunefleet_prices == PRICES
    monkeypatch.setenv("TUNEFLEET_PRICES", "spot=-1,on-demand=0.04")
    with pytest.raises(ValidationError, match="tunefleet_prices"):
        ClientSettings(**URLS)
    monkeypatch.setenv("TUNEFLEET_PRICES", "")
    assert ClientSettings(**URLS).tunefleet_prices is None
    assert WorkerSettings(rabbitmq_url="amqp://h").tunefleet_node_pool == "on-demand"
    monkeypatch.setenv("TUNEFLEET_NODE_POOL", "preemptible")
    with pytest.raises(ValidationError, match="tunefleet_node_pool"):
        WorkerSettings(rabbitmq_url="amqp://h")


# -- what a result carries ---------------------------------------------------------------------


def test_a_result_carries_core_seconds_and_pool_and_omits_them_when_unknown() -> None:
    trial = TrialSpec(trial_id=tid(1), library="noop", params={"score": 0.1})
    bare = TrialResult.of("c-1", trial, revision=0, attempts=1, status="done")
    assert "core_s" not in json.loads(bare.encode())  # a worker of the release before decodes it
    priced = result(1, 2.5, "spot")
    assert TrialResult.decode(priced.encode()) == priced
    body = json.loads(priced.encode())
    body["pool"] = "preemptible"
    with pytest.raises(DecodeError, match="pool"):
        TrialResult.decode(json.dumps(body).encode())
    body.update(pool="spot", core_s=-1)
    with pytest.raises(DecodeError, match="core_s"):
        TrialResult.decode(json.dumps(body).encode())


def test_a_familys_time_is_shared_so_that_the_shares_sum_to_it() -> None:
    results = [result(i, 0.0) for i in range(3)]
    shares = charged(results, 1.5, 4, "on-demand")
    assert [r.core_s for r in shares] == [2.0, 2.0, 2.0]
    assert sum(r.core_s or 0 for r in shares) == pytest.approx(1.5 * 4)
    assert {r.pool for r in shares} == {"on-demand"}
    # The cores held: the worker's, or the trial's own threads where it asks for more.
    assert cores_for(TrialSpec(trial_id=tid(1), library="xgboost", params={}), 3) == 3
    asks = TrialSpec(trial_id=tid(1), library="xgboost", params={"n_jobs": 8})
    assert cores_for(asks, 3) == 8


# -- budgets in the spec -----------------------------------------------------------------------


def test_a_budget_sets_one_limit_and_cost_needs_prices() -> None:
    with pytest.raises(ValidationError, match="exactly one of core_hours and cost"):
        BudgetSpec(core_hours=1, cost=2)
    with pytest.raises(ValidationError, match="exactly one"):
        BudgetSpec()
    with pytest.raises(ValidationError, match="greater than 0"):
        BudgetSpec(core_hours=-1)
    with pytest.raises(ValidationError, match=r"prices only goes with budget\.cost"):
        BudgetSpec(core_hours=1, prices=PRICES)
    # A spec file may leave the prices to the submitter; a request may not.
    unpriced = parse_spec({**SPEC, "budget": {"cost": 5}})
    with pytest.raises(ValidationError, match=r"budget\.cost needs a price table"):
        StudyRequest(study_id=unpriced.study_id(), spec=unpriced, submitted_at=0.0)
    body = json.loads(
        StudyRequest(study_id="c-1", spec=parse_spec(SPEC), submitted_at=0.0).encode()
    )
    body["spec"]["budget"] = {"cost": 5}
    with pytest.raises(DecodeError, match="TUNEFLEET_PRICES"):
        StudyRequest.decode(json.dumps(body).encode())
    spec = parse_spec({**SPEC, "budget": {"cost": 5, "prices": PRICES.model_dump()}})
    assert spec.budget is not None and spec.budget.prices == PRICES


def test_a_spec_without_a_budget_keeps_its_study_id() -> None:
    plain = parse_spec(SPEC)
    assert "budget" not in plain.canonical_json()
    assert "budget" not in plain.model_dump(mode="json")
    budgeted = parse_spec({**SPEC, "budget": {"core_hours": 2}})
    assert budgeted.study_id() != plain.study_id()
    assert StudySpec.model_validate(budgeted.model_dump(mode="json")) == budgeted


def test_submit_fills_in_the_submitters_prices_or_refuses_a_cost_budget() -> None:
    raw = StudySpec.model_validate({**SPEC, "budget": {"cost": 5}})
    priced = Client(ClientSettings(**URLS, tunefleet_prices=PRICES), store=MemoryStore())
    filled = priced.with_prices(raw)
    assert filled.budget is not None and filled.budget.prices == PRICES
    unpriced = Client(ClientSettings(**URLS), store=MemoryStore())
    with pytest.raises(SpecError, match="TUNEFLEET_PRICES"):
        unpriced.with_prices(raw)
    hours = StudySpec.model_validate({**SPEC, "budget": {"core_hours": 1}})
    assert unpriced.with_prices(hours) is hours


# -- the ledger --------------------------------------------------------------------------------


def test_the_ledger_is_the_sum_of_its_trials_core_seconds_at_the_prices() -> None:
    results = [
        record(1, 3600.0, "spot"),
        record(2, 1800.0, "on-demand", library="xgboost"),
        record(3, 720.0, "spot", attempts=3),
        record(4, None, None, status="failed", score=None),  # a worker of the release before
    ]
    book = ledger(study_record(SPEC), results, PRICES, "complete")
    assert book.total.core_s == 6120.0
    assert book.total.money == pytest.approx(3600 / 3600 * 0.01 + 0.5 * 0.04 + 0.2 * 0.01)
    assert {line.name: line.core_s for line in book.by_pool} == {
        "on-demand": 1800.0,
        "spot": 4320.0,
        "unknown": 0.0,
    }
    assert {line.name: line.trials for line in book.by_library} == {"noop": 3, "xgboost": 1}
    assert sum(line.money or 0 for line in book.by_library) == pytest.approx(book.total.money)
    assert [line.name for line in book.trials][:3] == [tid(1), tid(2), tid(3)]
    # Two extra deliveries of trial 3, each at most what its finished attempt cost.
    assert (book.waste.redeliveries, book.waste.trials) == (2, 1)
    assert book.waste.core_s == 1440.0 and not book.waste.exact
    exact = preemption_waste(results, PRICES, {tid(3): 100.0})
    assert exact.exact and exact.core_s == 100.0
    assert ledger(study_record(SPEC), results, None).total.money is None
    assert json.dumps(book.as_dict())  # the CLI's --json


def _start(i: int, attempt: int, worker: str, at: float) -> TrialStart:
    return TrialStart(tid(i), attempt, worker, at, 0)


def _fold(i: int, fold: int, worker: str, at: float, fit: float) -> FoldRecord:
    return FoldRecord(tid(i), 0, fold, 5, 0.5, fit, 0.0, worker, at)


def test_wasted_seconds_are_what_abandoned_deliveries_ran_less_what_they_checkpointed() -> None:
    # Trial 1: delivered at 100 to w1 (finished folds 0 and 1, 2 s each, then handed back),
    # again at 110 to w2 (fold 2, crashed), and at 120 to w3, which stored the result.
    results = [record(1, 12.0, worker="w3", attempts=3, finished_at=126.0), record(2, 5.0)]
    starts = [
        _start(1, 1, "w1", 100.0),
        _start(1, 2, "w2", 110.0),
        _start(1, 3, "w3", 120.0),
        _start(2, 1, "", 0.0),
    ]
    folds = [
        _fold(1, 0, "w1", 102.0, 2.0),
        _fold(1, 1, "w1", 104.0, 2.0),
        _fold(1, 2, "w2", 113.0, 3.0),
        _fold(1, 3, "w3", 123.0, 3.0),  # the final delivery's own: not a saving
    ]
    # Without stop times each abandoned delivery ended before its fold in progress, taken to
    # last as long as the trial's longest fold (3 s), would have finished after its last one:
    # (104 + 3 - 100 - 4) + (113 + 3 - 110 - 3) ...
    assert wasted_seconds(results, starts, folds) == {tid(1): 6.0}
    # ... and before the next delivery began: with no fold stored, that is all there is.
    assert wasted_seconds(results, starts, []) == {tid(1): 20.0}
    # With the workers' stop times (a drill's record), exact: (105 - 100 - 4) + (114 - 110 - 3).
    stopped = {"w1": 105.0, "w2": 114.0}
    assert wasted_seconds(results, starts, folds, stopped) == {tid(1): 2.0}
    # The ledger's core-seconds: the result's core-seconds carry the 7 s of folds it took from
    # checkpoints (tunefleet_worker.ledger): 26 core-s over 6 + 7 s, two cores.
    carrying = [dataclasses.replace(results[0], core_s=26.0), results[1]]
    assert wasted_core_seconds(carrying, starts, folds, stopped) == {tid(1): 4.0}
    # A delivery of several trials shares its seconds.
    batch = [_start(1, 1, "w1", 100.0), _start(9, 1, "w1", 100.0), _start(1, 2, "w3", 120.0)]
    assert wasted_seconds(results, batch, [], {"w1": 106.0}) == {tid(1): 3.0}
    # The ledger says which it is: exact, estimated from the store, or the attempts' bound.
    told = [
        preemption_waste(results, PRICES, {tid(1): 4.0}),
        preemption_waste(results, PRICES, {tid(1): 4.0}, exact=False),
        preemption_waste(results, PRICES),
    ]
    assert [w.qualifier for w in told] == ["", "about ", "at most "]
    assert told[1].core_s == 4.0 and told[2].core_s == 24.0


def test_a_cut_fold_continued_elsewhere_is_not_wasted() -> None:
    """With `checkpoint: rounds` the delivery stopped mid-fold stored the fold's booster (a
    round checkpoint, its fit's 4 s up to the cut) and ended there: the next delivery
    continued it, so those seconds are kept, not wasted."""
    results = [record(1, 12.0, worker="w2", attempts=2, finished_at=120.0)]
    starts = [_start(1, 1, "w1", 100.0), _start(1, 2, "w2", 110.0)]
    folds = [_fold(1, 0, "w1", 102.0, 2.0)]
    cut = RoundRecord(tid(1), 0, 1, 5, 40, 100, "0" * 64, "ubj", 10, "w1", 106.5, 4.0)
    # 100 -> 106.5 (stored on the stop): 6.5 s, less fold 0's 2 s and the cut fit's 4 s.
    assert wasted_seconds(results, starts, folds, rounds=[cut]) == {tid(1): 0.5}
    # Without it, the fold in progress is lost: up to the longest fold after fold 0.
    assert wasted_seconds(results, starts, folds) == {tid(1): 2.0}
    # Another worker's, or another revision's, record is not this delivery's.
    elsewhere = dataclasses.replace(cut, worker="w9")
    assert wasted_seconds(results, starts, folds, rounds=[elsewhere]) == {tid(1): 2.0}


def test_a_resumed_trial_carries_the_checkpointed_seconds_it_took() -> None:
    """Folds taken from fold checkpoints, and a fold continued from a round checkpoint, were
    paid for by an earlier delivery and used: the result's core-seconds count them, on the
    cores of its own (tunefleet_worker.ledger)."""
    a, b = tid(1), tid(2)
    resumed = {
        a: {0: FoldDone(0.9, 2.0, 0.5), 1: FoldDone(0.8, 3.0, 0.5)},
        b: {0: FoldDone(0.9, 2.0, 0.5)},  # a family: fold 1 is taken only where both have it
    }
    rounds = {a: {1: RoundSaved(40, 100, lambda: Path("x"), fit_time_s=4.0)}}  # a's shared fit
    continued = [
        r.model_copy(update={"resumed_at_round": 40}) for r in (result(1, 0), result(2, 0))
    ]
    assert carried_seconds(continued, resumed, rounds, 5) == [4.5, 4.5]  # 2.5 + 4 / 2
    plain = [result(1, 0), result(2, 0)]  # no fold continued: the round record was not used
    assert carried_seconds(plain, resumed, rounds, 5) == [2.5, 2.5]
    assert carried_seconds(plain, {}, {}, 5) == [0.0, 0.0]
    # 6 s of this delivery on 2 cores, shared; plus each one's 4.5 s on the same 2 cores.
    assert [r.core_s for r in charged(continued, 6.0, 2, "spot", [4.5, 4.5])] == [15.0, 15.0]


def test_cost_per_unit_of_score_counts_up_to_the_best() -> None:
    results = [
        record(1, 10.0, score=0.5, finished_at=1.0),
        record(2, 20.0, score=0.4, finished_at=2.0),
        record(3, 30.0, score=0.7, finished_at=3.0),
        record(4, 40.0, score=0.6, finished_at=4.0),
    ]
    gain = improvement(results, PRICES)
    assert gain is not None
    assert (gain.first_score, gain.best_score) == (0.5, 0.7)
    assert gain.to_best.core_s == 60.0 and gain.after_best.core_s == 40.0
    hours, money = gain.per_unit()
    assert hours == pytest.approx(60 / 3600 / 0.2)
    assert money == pytest.approx(60 / 3600 * 0.01 / 0.2)
    assert [step[0] for step in gain.steps] == [0.5, 0.7]
    flat = improvement([record(1, 5.0)], PRICES)
    assert flat is not None and flat.per_unit() == (None, None)
    assert improvement([record(1, 5.0, status="failed", score=None)], PRICES) is None


def test_a_studys_own_prices_come_before_the_readers() -> None:
    own = PriceTable(per_core_hour={"spot": 1, "on-demand": 2})
    budgeted = {**SPEC, "budget": {"cost": 5, "prices": own.model_dump()}}
    assert prices_for(study_record(budgeted), PRICES) == own
    assert prices_for(study_record(SPEC), PRICES) == PRICES
    assert prices_for(None, None) is None


# -- the planner's budget count and the state it ends in ---------------------------------------


def test_the_planner_stops_a_study_once_when_its_budget_is_spent() -> None:
    budgets = Budgets()
    spec = {**SPEC, "budget": {"core_hours": 1}}
    budgets.load(study_record(spec), [record(1, 1800.0)])
    assert budgets.spent_by(result(1, 1800.0)) is None  # stored already: counted once
    assert budgets.spent_by(result(2, 1000.0, revision=1)) is None  # another revision
    assert budgets.spent_by(result(3, 1000.0)) is None
    stop = budgets.spent_by(result(4, 1000.0))
    assert isinstance(stop, StudyCancelled)
    assert is_budget_stop(stop.by, stop.reason)
    assert stop.reason == "budget spent: 1.056 of 1 core-hours"
    assert budgets.stopped("c-1")
    assert budgets.spent_by(result(5, 1000.0)) is None  # once
    assert budgets.current(result(6, 1.0)) and not budgets.current(result(6, 1.0, revision=1))
    budgets.forget("c-1")
    assert not budgets.current(result(6, 1.0))


def test_a_cost_budget_counts_money_at_the_studys_prices() -> None:
    budgets = Budgets()
    spec = {**SPEC, "budget": {"cost": 0.02, "prices": PRICES.model_dump()}}
    budgets.load(study_record(spec), [])
    assert budgets.spent_by(result(1, 3600.0, "spot")) is None  # 0.01
    stop = budgets.spent_by(result(2, 1800.0, "on-demand"))  # + 0.02
    assert stop is not None and stop.reason == "budget spent: 0.03 of 0.02 USD"


def test_a_study_without_a_budget_is_never_stopped() -> None:
    budgets = Budgets()
    budgets.load(study_record(SPEC), None)
    assert budgets.current(result(1, 1.0, revision=3))
    assert budgets.spent_by(result(1, 1e9)) is None and not budgets.stopped("c-1")
    assert budgets.unbudgeted("c-1") and not budgets.unbudgeted("c-2")  # c-2: not seen yet


def test_a_planner_that_takes_over_counts_again_from_the_store() -> None:
    budgets = Budgets()
    budgets.load(study_record({**SPEC, "budget": {"core_hours": 1}}), [])
    assert budgets.current(result(1, 1.0)) and not budgets.unbudgeted("c-1")
    budgets.forget_all()  # another planner counted results meanwhile (Publisher._take_turn)
    assert not budgets.current(result(1, 1.0)) and not budgets.unbudgeted("c-1")


def test_a_spent_budget_ends_the_study_as_budget_spent_not_cancelled() -> None:
    assert (
        study_state(
            registered=True, cancelled=True, complete=False, started=True, budget_spent=True
        )
        == StudyState.BUDGET_SPENT
    )
    activity = StudyActivity("c-1")
    activity.apply(result(1, 7.0))
    activity.apply(StudyCancelled(study_id="c-1", cancelled_at=1.0, by="planner", reason="x"))
    assert activity.status().state == StudyState.CANCELLED
    stop = StudyCancelled(
        study_id="c-1", cancelled_at=1.0, by="planner", reason="budget spent: 1 of 1 core-hours"
    )
    activity.apply(stop)
    status = activity.status()
    assert status.state == StudyState.BUDGET_SPENT and status.core_s_by_pool == {"spot": 7.0}
    assert spent(((s, p) for p, s in status.core_s_by_pool.items()), PRICES).core_s == 7.0
    # A user's cancel with the same words is a cancel: only the planner spends budgets.
    assert not is_budget_stop("alice", "budget spent")


def test_the_report_and_the_cli_print_small_amounts_legibly() -> None:
    from tunefleet.cost import money, number
    from tunefleet.report.costs import cost_section

    assert number(2.5) == "2.5000" and number(0.0000238734) == "2.387e-05" and number(0) == "0.0000"
    assert money(None, "USD") == "-" and money(0.5, None) == "-"
    results = [record(1, 3600.0, "spot"), record(2, 1800.0, "on-demand", attempts=2)]
    section = cost_section(ledger(study_record(SPEC), results, PRICES, "complete"))
    assert "<h2>Cost</h2>" in section
    assert "<td class='num'>0.03 USD</td>" in section  # 0.01 + 0.5 x 0.04: the total
    assert "at most 0.5 core-hours wasted" in section
