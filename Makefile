# The two commands of the README. Each does all set-up itself (scripts/setup.sh, idempotent).
#   make study   run the whole study (dvc repro at the default CPU scale)
#   make test    run the tests (all of them: what CI runs)
# And: make quick  the whole study at the quick profile (profiles/quick.yaml), outputs under quick/
#      make lab    JupyterLab on the notebooks with the project's kernel (scripts/lab.sh prints the URL)
#      make test-fast  the quick loop: every test not marked slow (no Blender, notebook or worker-process runs)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup study quick lab test test-fast check-fresh lint bench
setup:
	@bash scripts/setup.sh

study: setup
	dvc repro

quick: setup
	for stage in render finetune sample sjc evaluate; do python -m zero1to3 run $$stage --params profiles/quick.yaml || exit 1; done

lab: setup
	bash scripts/lab.sh

# the suite, then the committed results against the committed code (stale results fail, naming their stages)
test: setup
	python -m pytest -n 2 --dist loadgroup
	python scripts/check_fresh.py

test-fast: setup
	python -m pytest -n 2 --dist loadgroup -m "not slow"

# dvc.lock against the code, notebooks and params it recorded (scripts/check_fresh.py): names the stale stages
check-fresh: setup
	python scripts/check_fresh.py

lint: setup
	ruff check lib tests benchmarks && ruff format --check lib tests benchmarks

bench: setup
	python benchmarks/bench_render.py
