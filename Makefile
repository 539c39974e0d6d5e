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
# `make test` runs the test files in this many processes (pytest-xdist), each with its share of the cores; it
# does not time the latency benchmarks (`make bench` does, alone)
TEST_WORKERS ?= 2

.PHONY: install demo test bench clean gpu-prepare gpu-check

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# About 7 minutes on two cores after installation: ResNet-10's recipe at the demo budget (3 epochs on 12,288
# images) learns to about 55% on the JPEG copy; the table labels it a demo, never a reproduction.
demo: install
	$(BIN)/harness check reproductions/*.toml
	$(BIN)/harness run reproductions/resnet10.toml --profile demo --results $(DEMO_RESULTS) $(if $(DATA),--data $(DATA))
	$(BIN)/harness table --results $(DEMO_RESULTS)

# The Slurm tests need a one-node cluster: tests/slurm/start-cluster.sh installs and starts one when it can
# (as root), and the tests say why they skip when it cannot; CI sets HARNESS_REQUIRE_SLURM=1 so they never skip.
test: install
	@eval "$$(tests/slurm/start-cluster.sh 2>$(SLURM_LOG) | grep '^export SLURM_CONF=')"; \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --benchmark-disable; status=$$?; \
	  tests/slurm/start-cluster.sh stop 2>>$(SLURM_LOG) || true; exit $$status

bench: install
	HARNESS_BENCH_ROUNDS=50 $(BIN)/python -m pytest tests/benchmarks

# Before a GPU machine gets this tree (it has no network, and its Python 3.12 lacks a few packages): wheels for
# those into .whl/ and the CIFAR-10 copy into .data/ (both git-ignored; carry them along).
GPU_WHEELS := pydantic==2.14.3 pydantic_core==2.50.4 annotated_types==0.8.0 typing_inspection==0.4.5 \
	typing_extensions==4.16.0 submitit==1.5.4 cloudpickle==3.1.2 yacs==0.1.8 termcolor==3.3.0 portalocker==4.4.2 \
	PyYAML==6.0.3 tabulate==0.10.0 tqdm==4.70.1 tomli_w==1.2.0 pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.3 \
	pygments==2.21.0
# the GPU machine's Python: the binary wheels must match it
GPU_PYTHON ?= 3.12
gpu-prepare:
	mkdir -p .whl .data && cp ../shared/data/cifar10-jpeg.tar.gz .data/
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	$(PYTHON) -m pip wheel --quiet --no-deps -w .whl fvcore==0.1.5.post20221221 iopath==0.1.10  # sdists only on PyPI

# On the GPU machine, with its own Python and PyTorch (README: "Checking a GPU"): about 9 minutes.
gpu-check:
	python3 tests/gpu/check.py --wheels .whl --data .data/cifar10-jpeg.tar.gz --out $${OUT:-gpu-check-out}

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
