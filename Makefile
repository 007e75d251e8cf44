# selfheal: the targets a newcomer can guess. `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
DEPLOY_VENV := .venv-deploy
BENCH_VENV := .venv-bench
TOOLKIT_VENV := .venv-toolkit
TOOLKIT_REQUIREMENTS := bench/src/selfheal_bench/localcloud/toolkit/requirements.txt
# sagemaker-containers imports on Python 3.9 only; pyenv's, or the system's python3.9.
PYTHON39 ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.9*/bin/python) python3.9)
# Swap two folders in one step (Linux renameat2's RENAME_EXCHANGE): a rebuilt environment replaces the old one with
# no moment where neither is there (two renames leave one, and a process starting then fails).
EXCHANGE := $(PYTHON39) -c 'import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); \
	sys.exit(libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2) and \
	f"exchange {sys.argv[1:]}: {os.strerror(ctypes.get_errno())}")'
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
SAGEMAKER_VERSION := 3.27.0
OUT ?= out
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo backtest test lint bench reliability deploy iam-grants clean

## setup: .venv with the product (the CLI), the bench (the local cloud, as the extra `bench`) and the test tools; the SAM CLI, checkov, the
## sagemaker SDK and the containers' toolkit each in an environment of its own (each pins versions the others
## fight over)
setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed $(DEPLOY_VENV)/.installed \
	$(TOOLKIT_VENV)/.installed chromium

$(VENV)/.installed: pyproject.toml bench/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ./bench -e '.[dev,bench]'
	touch $@

# The SAM CLI pins exact versions of boto3, click and more: it gets an environment of its own.
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# The sagemaker SDK resolves container image URIs at deploy time only; it never goes into Lambda.
$(DEPLOY_VENV)/.installed:
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/pip install --quiet sagemaker==$(SAGEMAKER_VERSION)
	touch $@

# The local cloud starts each training and serving container with the real script-mode toolkit's own code
# (sagemaker-containers, as the XGBoost container does), which needs Python 3.9. A rebuild (the requirements
# changed) builds beside it and swaps the new one in when complete: tests running meanwhile keep the old one, and a
# failed build leaves it. pip's scripts and activate name the folder they were built in: they get the final one.
$(TOOLKIT_VENV)/.installed: $(TOOLKIT_REQUIREMENTS)
	$(PYTHON39) -m venv --clear --prompt $(TOOLKIT_VENV) $(TOOLKIT_VENV).new
	$(TOOLKIT_VENV).new/bin/pip install --quiet --upgrade pip
	PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python $(TOOLKIT_VENV).new/bin/pip install --quiet -r $(TOOLKIT_REQUIREMENTS)
	grep -rlIF $(CURDIR)/$(TOOLKIT_VENV).new $(TOOLKIT_VENV).new/bin \
		| xargs -r sed -i 's|$(CURDIR)/$(TOOLKIT_VENV).new|$(CURDIR)/$(TOOLKIT_VENV)|g'
	touch $(TOOLKIT_VENV).new/.installed
	if [ -e $(TOOLKIT_VENV) ]; then $(EXCHANGE) $(TOOLKIT_VENV).new $(TOOLKIT_VENV); else mv -T $(TOOLKIT_VENV).new $(TOOLKIT_VENV); fi
	rm -rf $(TOOLKIT_VENV).new

# The report test renders report.html in a real headless browser: Debian's Chromium.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

## demo: the whole self-healing loop on generated data, on the local cloud
demo: setup
	$(VENV)/bin/selfheal demo --out $(OUT)/demo

## backtest: a generated 26-week history with gradual concept drift, replayed under the configured, never and
## always retraining policies (WEEKS=n for a shorter one; NO_DRIFT=1 for a history without drift)
backtest: setup
	$(VENV)/bin/python -m selfheal_bench.backtest_example $(OUT)/backtest-history --weeks $(or $(WEEKS),26) \
		$(if $(NO_DRIFT),--no-drift)
	$(VENV)/bin/selfheal backtest $(OUT)/backtest-history/history.yaml --out $(OUT)/backtest

## test: every test (unit, state machine paths, template, end to end on the local cloud), one worker per core
test: setup
	$(VENV)/bin/pytest -n auto --dist loadgroup

## lint: ruff and cfn-lint
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint template.yaml

# evidently and NannyML (the drift and estimation benchmarks' comparisons) need pandas < 3: an environment of their own.
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet 'evidently==0.7.23' 'nannyml==0.13.1' statsmodels 'pandas<3' numpy pyarrow
	touch $@

## bench: every benchmark figure beside its floor, measured in the same run (writes benchmarks/results.json)
bench: setup $(BENCH_VENV)/.installed
	$(VENV)/bin/python benchmarks/run.py --out benchmarks/results.json

## reliability: the fault catalogue, hostile inputs, the burst and the storm, with what held (FULL=1: full sizes;
## ONLY=name[,name]: those scenarios alone, e.g. ONLY=storm)
reliability: setup
	$(VENV)/bin/python -m selfheal_bench.reliability $(if $(FULL),--full) $(if $(ONLY),--only $(ONLY))

## iam-grants: rewrite the reviewed IAM snapshot (tests/template/iam_grants.jsonl) after reviewing a policy change;
## the template tests only compare with it
iam-grants: setup
	$(VENV)/bin/python -m selfheal_bench.iam_grants

## deploy: build and deploy to AWS (ENV=dev|prod), publishing ml/ under its content hash
deploy: setup
	$(VENV)/bin/selfheal deploy --env $(or $(ENV),dev)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(DEPLOY_VENV) $(BENCH_VENV) $(TOOLKIT_VENV) $(TOOLKIT_VENV).new .aws-sam $(OUT)
