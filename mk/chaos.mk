# The fault-injection suite (tests/chaos); its figures go to docs/reliability.md.
.PHONY: chaos chaos-short fuzz

# The full form. The short form `make test` runs is the same test with the defaults of
# tests/chaos/harness.py:ChaosConfig; any of these can be overridden on the command line.
CHAOS_TRIALS ?= 200
CHAOS_WORKERS ?= 4
CHAOS_KILLS ?= 10
CHAOS_SIGTERMS ?= 5
CHAOS_STORE_OUTAGE_S ?= 10
CHAOS_STORE_REFUSE_S ?= 70
CHAOS_DELIVERY_LIMIT ?= 10
CHAOS_TRIAL_S ?= 1.0
CHAOS_BULK_TRIALS ?= 2000
CHAOS_TIMEOUT_S ?= 1800
CHAOS_REPORT ?= $(CURDIR)/.tunefleet/chaos-report.json
CHAOS_ADAPTIVE_TRIALS ?= 200
CHAOS_STALL_TRIALS ?= 2000
CHAOS_STALL_TRIAL_S ?= 0.02
# The preemption storm (tests/chaos/test_preemption_storm.py): trials of STORM_FOLDS folds,
# each worker SIGTERMed STORM_EVERY_S (lo:hi) seconds after it took its first trial.
STORM_TRIALS ?= 40
STORM_WORKERS ?= 4
STORM_TRIAL_S ?= 10
STORM_FOLDS ?= 5
STORM_EVERY_S ?= 3:9
STORM_S ?= 90
STORM_GRACE_S ?= 1
STORM_DELIVERY_LIMIT ?= 2

chaos: services-install ## Fault injection, full: 200+ trials, 4 workers, 10+ kill -9, 5 SIGTERM, broker restart, 10 s store outage, 70 s of a store refusing writes, a resubmission race, collector kill, every bad input; a preemption storm, its wasted seconds
	mkdir -p $(dir $(CHAOS_REPORT))
	CHAOS_TRIALS=$(CHAOS_TRIALS) CHAOS_WORKERS=$(CHAOS_WORKERS) CHAOS_KILLS=$(CHAOS_KILLS) \
	CHAOS_SIGTERMS=$(CHAOS_SIGTERMS) CHAOS_STORE_OUTAGE_S=$(CHAOS_STORE_OUTAGE_S) \
	CHAOS_STORE_REFUSE_S=$(CHAOS_STORE_REFUSE_S) \
	CHAOS_DELIVERY_LIMIT=$(CHAOS_DELIVERY_LIMIT) CHAOS_TRIAL_S=$(CHAOS_TRIAL_S) \
	CHAOS_BULK_TRIALS=$(CHAOS_BULK_TRIALS) CHAOS_TIMEOUT_S=$(CHAOS_TIMEOUT_S) \
	CHAOS_REPORT=$(CHAOS_REPORT) CHAOS_ADAPTIVE_TRIALS=$(CHAOS_ADAPTIVE_TRIALS) \
	CHAOS_STALL_TRIALS=$(CHAOS_STALL_TRIALS) CHAOS_STALL_TRIAL_S=$(CHAOS_STALL_TRIAL_S) \
	STORM_TRIALS=$(STORM_TRIALS) STORM_WORKERS=$(STORM_WORKERS) STORM_TRIAL_S=$(STORM_TRIAL_S) \
	STORM_FOLDS=$(STORM_FOLDS) STORM_EVERY_S=$(STORM_EVERY_S) STORM_S=$(STORM_S) \
	STORM_GRACE_S=$(STORM_GRACE_S) STORM_DELIVERY_LIMIT=$(STORM_DELIVERY_LIMIT) \
		$(UV) run --frozen pytest -q -s tests/chaos/test_chaos.py tests/chaos/test_adaptive_chaos.py tests/chaos/test_store_stall.py \
		tests/chaos/test_preemption_storm.py
	@$(UV) run --frozen python -c "import json,sys; s=json.load(open(sys.argv[1]))['preemption_storm']; \
		print(f\"preemption storm: wasted {s['wasted_s']:.1f} s of {s['trial_s'] + s['wasted_s']:.1f} worker seconds ({s['wasted_fraction']:.1%}), {s['preemptions']} preemptions\")" $(CHAOS_REPORT)

chaos-short: services-install ## Fault injection, the short form CI runs inside `make test`
	$(UV) run --frozen pytest -q -s tests/chaos/test_chaos.py tests/chaos/test_adaptive_chaos.py tests/chaos/test_store_stall.py \
		tests/chaos/test_preemption_storm.py

FUZZ_PROFILE ?= long
fuzz: install ## Property-based fuzzing, long form: every decoder, the spec parser, the CLI's spec loading
	HYPOTHESIS_PROFILE=$(FUZZ_PROFILE) $(UV) run --frozen pytest -q --hypothesis-show-statistics tests/fuzz
