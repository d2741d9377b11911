# Two commands for a fresh clone: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast tools lint typecheck pytest bench clean deploy-check hadolint k8s-validate rules-check metrics-check deploy-sync

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The benchmarks also need the official SDK (case 1c); see benchmarks/ and docs/performance.md.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

demo: $(STAMP)
	$(BIN)/stage-monitor demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/ruff format --check monitor tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict monitor tests benchmarks

pytest: $(STAMP) tools
	$(BIN)/pytest -q

test: tools lint typecheck deploy-check pytest

# Unit and loopback tests only: no subprocesses, no Redis, no browser. For the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/loopback

# The system tests' real servers, from Debian's packages (installed when missing and root).
tools:
	@bash .ci/tools

# --- deploy/ checked with the real tools, not by reading YAML (docs/deploy.md); pytest
# stays last in `make test` so its summary closes the output.
PROMTOOL ?= promtool

deploy-check: hadolint k8s-validate rules-check metrics-check

hadolint: $(STAMP)
	$(BIN)/hadolint Dockerfile

# Against the newest Kubernetes schemas kubernetes-validate has and the oldest
# version the manifests promise to fit. It has no schema for the Prometheus
# Operator's kinds (it warns); tests/system/test_deploy_files.py checks those two.
K8S_OLDEST ?= 1.27.0
# The single-replica install, the HA overlay and the example Redis, each with its
# Secret templates.
K8S_BUILT := build/kubernetes.yaml build/kubernetes-ha.yaml build/kubernetes-redis.yaml
K8S_SECRETS := deploy/kubernetes/secret.example.yaml \
	deploy/kubernetes/overlays/ha/redis-secret.example.yaml \
	deploy/kubernetes/redis-example/secret.example.yaml
k8s-validate: $(STAMP)
	@mkdir -p build
	$(BIN)/kubectl kustomize deploy/kubernetes > build/kubernetes.yaml
	$(BIN)/kubectl kustomize deploy/kubernetes/overlays/ha > build/kubernetes-ha.yaml
	$(BIN)/kubectl kustomize deploy/kubernetes/redis-example > build/kubernetes-redis.yaml
	$(BIN)/kubernetes-validate --strict --quiet $(K8S_BUILT) $(K8S_SECRETS)
	$(BIN)/kubernetes-validate --strict --quiet --no-warn -k $(K8S_OLDEST) $(K8S_BUILT) $(K8S_SECRETS)

rules-check: tools
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml

metrics-check: $(STAMP) tools
	@mkdir -p build
	$(BIN)/python -m tests.support.deploy live-metrics > build/metrics.txt
	$(PROMTOOL) check metrics < build/metrics.txt

# Regenerate deploy/kubernetes/base/prometheusrule.yaml after editing deploy/prometheus/alerts.yml.
deploy-sync: $(STAMP)
	$(BIN)/python -m tests.support.deploy sync-rules

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
