# Benchmarks (bench/) and the load test (loadtest/); numbers go to docs/benchmarks.md.
.PHONY: bench bench-quick bench-adaptive bench-early-stopping bench-early-stopping-lightgbm load

BENCH_REPS ?= 3
LOAD_USERS ?= 20
LOAD_RATE ?= 100
LOAD_BATCH ?= 10
LOAD_TIME ?= 60s
LOAD_NAME ?= loadtest

bench: services-install ## The benchmarks (GridSearchCV, Optuna, Ray Tune side by side) + a profile, median of BENCH_REPS runs -> docs/benchmarks.md
	$(UV) run --frozen --group peers python -m bench --reps $(BENCH_REPS)

bench-quick: services-install ## Small versions of the benchmarks to check the harness (-> .tunefleet/)
	$(UV) run --frozen --group peers python -m bench --quick --reps 1

bench-adaptive: services-install ## Adaptive search: tunefleet's TPE and ASHA against Optuna's and Ray Tune's, 2 datasets, several seeds -> docs/benchmarks.md
	$(UV) run --frozen --group peers python -m bench.adaptive

bench-early-stopping: services-install ## Early stopping against an n_estimators grid (families) and Optuna's pruning over xgb.cv, 2 datasets, 3 seeds -> docs/benchmarks.md
	$(UV) run --frozen --group peers python -m bench.early_stopping

bench-early-stopping-lightgbm: services-install ## The same with LightGBM (Optuna's LightGBMPruningCallback over lgb.cv) -> docs/benchmarks.md
	$(UV) run --frozen --group peers python -m bench.early_stopping --library lightgbm

load: services-install ## Locust: LOAD_USERS worker stand-ins x LOAD_RATE results/s for LOAD_TIME -> docs
	mkdir -p .tunefleet
	PYTHONPATH=. $(UV) run --frozen locust -f loadtest/locustfile.py --headless --only-summary \
		-u $(LOAD_USERS) -r $(LOAD_USERS) -t $(LOAD_TIME) --result-rate $(LOAD_RATE) \
		--batch $(LOAD_BATCH) --report $(CURDIR)/.tunefleet/load-report.json
	$(UV) run --frozen python -m bench.loadreport $(CURDIR)/.tunefleet/load-report.json $(LOAD_NAME)
