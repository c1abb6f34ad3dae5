# gitmoxi — the two set-up commands: `make test` and `make demo`.
VENV := .venv
PY := $(VENV)/bin/python
MOTO_PIN := moto[server]==5.2.5

.PHONY: test demo venv bench-plan

$(VENV)/.installed-5.2.5:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(MOTO_PIN)'
	touch $@

venv: $(VENV)/.installed-5.2.5

test: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	bash scripts/check-deploy-deps.sh
	$(PY) tests/moto/test_server.py
	cargo test --workspace

demo: venv
	cargo build --bin gitmoxi
	bash examples/demo.sh

# `gitmoxi plan` over a generated repository of 2,000 ECS apps (figure in the README).
bench-plan:
	cargo build --release --bin gitmoxi
	bash scripts/bench-plan.sh 2000
