# Two entry points, each doing all of its own set-up on a machine with Python 3.11, bash and make:
#   make demo   install, then run the main job
#   make test   install, then run the test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Local CIFAR-10 for the demo: $HARNESS_DATA, else the JPEG copy beside the project, else torchvision's download.
DATA ?= $(or $(HARNESS_DATA),$(wildcard ../shared/data/cifar10-jpeg.tar.gz))
DEMO_RESULTS ?= runs/demo
SLURM_LOG ?= /tmp/harness-slurm-start.log

.PHONY: install demo test bench clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/harness check reproductions/*.toml
	$(BIN)/harness measure reproductions/*.toml --no-latency
	$(BIN)/harness run reproductions/dmsresnet.toml --profile smoke --results $(DEMO_RESULTS) $(if $(DATA),--data $(DATA))
	$(BIN)/harness table --results $(DEMO_RESULTS)

# The Slurm tests need a one-node cluster: tests/slurm/start-cluster.sh installs and starts one when it can
# (as root), and the tests say why they skip when it cannot; CI sets HARNESS_REQUIRE_SLURM=1 so they never skip.
test: install
	@eval "$$(tests/slurm/start-cluster.sh 2>$(SLURM_LOG) | grep '^export SLURM_CONF=')"; \
	  $(BIN)/python -m pytest; status=$$?; \
	  tests/slurm/start-cluster.sh stop 2>>$(SLURM_LOG) || true; exit $$status

bench: install
	HARNESS_BENCH_ROUNDS=50 $(BIN)/python -m pytest tests/benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
