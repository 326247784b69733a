"""The fault-injection suite: short in the default run, full with `make chaos` (same code)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosConfig, OwnServices, run_chaos

CONFIG = ChaosConfig.from_env()


@pytest.mark.services
@pytest.mark.timeout(int(CONFIG.timeout_s) + 300)
def test_no_trial_lost_or_duplicated_under_faults(
    chaos_services: OwnServices, tmp_path: Path
) -> None:
    report = run_chaos(CONFIG, chaos_services, tmp_path)
    print("\n" + "\n".join(report.timeline) + "\n" + report.summary())
    if os.environ.get("CHAOS_REPORT"):
        Path(os.environ["CHAOS_REPORT"]).write_text(report.as_json())

    # Every fault happened, each while ordinary trials were still to run.
    assert report.kills == CONFIG.kills
    assert report.sigterms == CONFIG.sigterms
    assert report.broker_restarts == 1
    # ... while the publisher was publishing: its unconfirmed publishes were retried.
    assert report.broker_restart_mid_submission
    assert report.store_outages == 1
    assert report.collector_kills == 1
    assert report.store_refusals == 1
    assert report.resubmissions == 2
    assert report.actions_mid_study == report.actions
    # A SIGTERM is a clean exit, whether the trial in hand was finished or abandoned.
    assert report.sigterm_exit_codes == [0] * CONFIG.sigterms
    # The poison trial was handed out (and its worker killed) until the limit dead-lettered it.
    assert report.poison_kills >= 1
    # Exactly one result per trial: nothing lost, nothing twice, nothing made up.
    assert (report.lost, report.duplicated, report.unexpected) == (0, 0, 0)
    # Computed again only where a crash took a trial in hand: never for a resubmission, a
    # store refusing writes or any other reason.
    assert report.recomputed_otherwise == []
    assert report.bulk_trials == CONFIG.bulk_trials
    assert report.wrong == []
    designed_to_fail = 3 + (1 if CONFIG.real_library else 0)
    assert report.failed_as_designed == designed_to_fail
    assert report.redeliveries >= report.poison_kills
    # Every bad input has its outcome, and every service is up and still working.
    assert report.bad_input_problems == []
    assert report.dead_services == []
    assert report.probe_ok
