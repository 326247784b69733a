"""`docker compose down` then `up`: the studies and the models are still there (volumes)."""

from __future__ import annotations

from tunefleet.client import Client

from tests.containers.conftest import WORKERS, ComposeStack

SPEC = {
    "name": "compose-volumes",
    "dataset": "breast_cancer",
    "metric": "roc_auc",
    "cv": {"folds": 2, "seed": 3},
    "search": {"lightgbm": {"fixed": {"n_estimators": 5}, "grid": {"num_leaves": [4, 8]}}},
}


def test_down_then_up_keeps_every_study_and_model(compose_stack: ComposeStack) -> None:
    client = Client(compose_stack.settings())
    study = client.submit(SPEC)
    study.wait(progress=False, timeout_s=300)
    model = client.wait_model(str(study), client.refit(str(study)), timeout_s=300)
    before = {
        "studies": sorted(d["_id"] for d in compose_stack.db().studies.find()),
        "trials": compose_stack.db().trials.count_documents({}),
        "models": sorted(d["_id"] for d in compose_stack.db().models.find()),
    }
    stored_bytes = client.model_bytes(model)

    compose_stack.stack.down()  # no -v: the named volumes stay
    assert compose_stack.containers("rabbitmq") == []
    compose_stack.stack.up(workers=WORKERS)

    after_db = compose_stack.db()
    after = {
        "studies": sorted(d["_id"] for d in after_db.studies.find()),
        "trials": after_db.trials.count_documents({}),
        "models": sorted(d["_id"] for d in after_db.models.find()),
    }
    assert after == before and str(study) in after["studies"]
    again = Client(compose_stack.settings())
    assert again.model_bytes(again.model(str(study))) == stored_bytes  # type: ignore[arg-type]
    status = again.status(str(study))
    assert status is not None and status.complete and status.done == 2
