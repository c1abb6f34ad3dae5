# gitmoxi — the two set-up commands: `make test` and `make demo`.
VENV := .venv
PY := $(VENV)/bin/python
MOTO_PIN := moto[server]==5.2.5

.PHONY: test demo venv bench bench-plan soak soak-ha fuzz

$(VENV)/.installed-5.2.5:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(MOTO_PIN)'
	touch $@

# Gitmoxi's CLI, for the test that runs every gmctl command against gitmoxi serve (its own venv:
# gmctl pins its own click/pydantic/requests).
GMCTL_PIN := gmctl==0.9.0
.venv-gmctl/.installed-0.9.0:
	python3 -m venv .venv-gmctl
	.venv-gmctl/bin/pip install --quiet --disable-pip-version-check '$(GMCTL_PIN)'
	touch $@

venv: $(VENV)/.installed-5.2.5 .venv-gmctl/.installed-0.9.0

test: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	bash scripts/check-deploy-deps.sh
	python3 scripts/check_floors.py
	$(PY) tests/moto/test_server.py
	bash scripts/ensure-sshd.sh
	bash scripts/ensure-chromium.sh
	cargo test --workspace
	bash scripts/fuzz.sh 20

demo: venv
	cargo build --bin gitmoxi
	bash examples/demo.sh

# The AWS CLI for the fan-out baseline (its own venv: awscli pins its own botocore).
AWSCLI_PIN := awscli==1.46.3
.venv-awscli/.installed-1.46.3:
	python3 -m venv .venv-awscli
	.venv-awscli/bin/pip install --quiet --disable-pip-version-check '$(AWSCLI_PIN)'
	touch $@

# The benchmark table of the README: `gitmoxi plan` over 200 / 2,000 / 20,000 generated apps,
# a no-change reconcile pass (render, plan, reconcile every app; AWS calls counted), and against
# moto: webhook → first AWS call, the 200-service fan-out against the AWS CLI, peak RSS.
bench: venv .venv-awscli/.installed-1.46.3
	cargo build --release --bin gitmoxi
	bash scripts/bench-plan.sh 200 | tail -1
	bash scripts/bench-plan.sh 2000 | tail -1
	bash scripts/bench-plan.sh 20000 | tail -1
	cargo bench --bench reconcile -- 200 2000 20000
	cargo bench --bench moto -- webhook 100 fanout 200 rss 2000 quota 500
	cargo bench --bench reconcile -- steady 2000

# `gitmoxi plan` over a generated repository of 2,000 ECS apps (figure in the README).
bench-plan:
	cargo build --release --bin gitmoxi
	bash scripts/bench-plan.sh 2000

# The many-apps simulation with random seeds for SOAK_SECONDS (default 600); a failure prints
# its seed, replay it with SIM_SEED=n cargo test --test it sim_many.
SOAK_SECONDS ?= 600
soak:
	cargo test --test it --no-run
	@end=$$(( $$(date +%s) + $(SOAK_SECONDS) )); runs=0; \
	while [ $$(date +%s) -lt $$end ]; do \
	  seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); runs=$$((runs+1)); \
	  SIM_SEED=$$seed cargo test -q --test it sim_many_apps_with_restarts_and_faults_converge_seed_1 >/tmp/gitmoxi-soak.log 2>&1 \
	    || { echo "seed $$seed failed (log: /tmp/gitmoxi-soak.log)"; exit 1; }; \
	done; echo "$$runs seeds passed"
	GITMOXI_CONVERGENCE_CASES=20 cargo test -q --test it moto_random_pushes_in_every_phase_converge_on_what_the_files_say
	GITMOXI_INTERLEAVING_CASES=1000 cargo test -q -p gitmoxi-state seeded_interleavings
	$(MAKE) soak-ha

# High availability, long: three replicas on moto's DynamoDB, HA_ROUNDS (default 10) rounds of
# kill -9 of an owner mid-shift and SIGSTOP past a lease, each with a new random seed per run.
HA_ROUNDS ?= 10
soak-ha: venv
	seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	HA_SEED=$$seed HA_ROUNDS=$(HA_ROUNDS) cargo test --test ha \
	  || { echo "HA soak failed with HA_SEED=$$seed (replica logs: target/ha-logs/)"; exit 1; }

# Every cargo fuzz target for FUZZ_SECONDS (default 300) each; new inputs grow fuzz/corpus/.
# `make test` runs the same targets for 20 s each.
FUZZ_SECONDS ?= 300
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS) --grow
