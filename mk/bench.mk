# Benchmarks (bench/) and the load test (loadtest/); numbers go to docs/benchmarks.md.
.PHONY: bench bench-quick load

BENCH_REPS ?= 3
LOAD_USERS ?= 40
LOAD_RATE ?= 100
LOAD_TIME ?= 60s

bench: services-install ## All five benchmarks + profile, median of BENCH_REPS runs -> docs/benchmarks.md
	$(UV) run --frozen python -m bench --reps $(BENCH_REPS)

bench-quick: services-install ## Small versions of the benchmarks, to check the harness (not for the docs)
	$(UV) run --frozen python -m bench --quick --reps 1

load: services-install ## Locust load test: LOAD_USERS worker stand-ins x LOAD_RATE results/s for LOAD_TIME
	mkdir -p .tunefleet
	PYTHONPATH=. $(UV) run --frozen locust -f loadtest/locustfile.py --headless --only-summary \
		-u $(LOAD_USERS) -r $(LOAD_USERS) -t $(LOAD_TIME) --result-rate $(LOAD_RATE) \
		--report $(CURDIR)/.tunefleet/load-report.json
	$(UV) run --frozen python -m bench.loadreport $(CURDIR)/.tunefleet/load-report.json
