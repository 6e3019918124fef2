# Two entry points for a fresh Debian machine: `make demo` and `make test`.
# Both install the C libraries Parley links against when they are missing.

SWIFT        ?= swift
APT_PACKAGES := libsodium-dev libuv1-dev libsecp256k1-dev nettle-dev
SUDO         := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_ARGS    ?=

.PHONY: all deps build release test demo demo-evm drills-evm sim vectors clean contracts contracts-check fuzz

all: build

# Install only what is missing; refresh the package lists only when the
# install cannot find a package without it (fresh images ship empty lists).
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q $$missing || \
	    { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; }; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product parley

# Also builds the release `parley` that `make demo` runs: the optimizer has crashed on
# code the debug build accepts, and that must fail here, not on a user's first command.
# Then the whole-node simulator runs a batch of seeds from that build (Docs/Simulation.md);
# a failure prints the seed and its trace.
# The EVM suites (the conformance suite's `evm` cases, Tests/ParleyEthereumTests) run on the
# local EVM, whose Python environment `evm-env` makes; `contracts-check` recompiles the
# Vyper contracts and fails if the committed bytecode differs.
# Tools/test/run-tests.py runs the test binary as `swift test` would, and ends a hung run
# (no test ending for 10 minutes) with the names of the tests still running and every
# thread's backtrace; it lists the slowest cases at the end. TEST_ARGS="--filter NAME"
# runs a part. Tools/docs/snippets.py first turns the Swift snippets of README.md and
# Docs/{Node,Control}.md into Tests/DocSnippetTests, so the build compiles them as written;
# Tools/docs/modules.py --check fails when Docs/Architecture.md's module diagram or table no
# longer matches Package.swift.
# Tools/tour/check-readme-tour.py then runs README.md's "Two terminals" tour
# as written (its paths under /tmp/tour and ports 7545, 7001, 7002) with the release build.
# Last, every libFuzzer target (Fuzz/, Docs/Architecture.md "Fuzzing") is built with ASan
# into .build-fuzz and run over its committed corpus plus FUZZ_SECONDS of fuzzing from a
# fixed seed (-seed=1), so a decoder change that crashes or breaks a target's property fails
# here; `make fuzz` explores with random seeds.
SIM_SEEDS ?= 2000
FUZZ_SECONDS ?= 5
test: deps vectors evm-env contracts-check
	python3 Tools/docs/snippets.py
	python3 Tools/docs/modules.py --check
	$(SWIFT) build --build-tests
	python3 Tools/test/run-tests.py $$($(SWIFT) build --show-bin-path)/ParleyPackageTests.xctest $(TEST_ARGS)
	$(SWIFT) build -c release --product parley
	python3 Tools/tour/check-readme-tour.py --bin $$($(SWIFT) build -c release --show-bin-path)
	$$($(SWIFT) build -c release --show-bin-path)/parley sim --seeds $(SIM_SEEDS) --require-coverage
	SWIFT=$(SWIFT) python3 Tools/fuzz/fuzz.py run --seconds $(FUZZ_SECONDS) -- -seed=1

# Every fuzz target for SECONDS seconds each (libFuzzer with ASan, built into .build-fuzz);
# prints executions and coverage per target and fails on a finding. Tools/fuzz/fuzz.py
# --help has more (a run by executions, some targets only, folding finds into the corpus).
SECONDS ?= 60
fuzz: deps
	SWIFT=$(SWIFT) python3 Tools/fuzz/fuzz.py run --seconds $(SECONDS)

# The Ethereum test vectors (Tests/Vectors/: the backend's signed bytes, signed EIP-1559
# transactions) recomputed with eth-abi and eth-account from PyPI, in a virtual environment made here when missing: the
# Swift tests check Parley against the same file, so two implementations agree on every byte.
VENV := .venv-vectors
$(VENV)/.installed: Tools/vectors/requirements.txt
	@python3 -m venv $(VENV) 2>/dev/null || { \
	  echo "Installing python3-venv (apt-get)"; export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q python3-venv || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; }; \
	  python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q -r Tools/vectors/requirements.txt
	@touch $@

vectors: $(VENV)/.installed
	$(VENV)/bin/python Tools/vectors/ethereum_backend.py check Tests/Vectors/ethereum-backend.json
	$(VENV)/bin/python Tools/vectors/eip1559_transactions.py check Tests/Vectors/eip1559-transactions.json

# The payment demo: two nodes over loopback TCP, 10,000 payments, cooperative close on the
# embedded chain. Pass options through DEMO_ARGS, e.g. make demo DEMO_ARGS="--dispute cheat".
demo: release
	$$($(SWIFT) build -c release --show-bin-path)/parley demo $(DEMO_ARGS)

# The same on Ethereum: the local EVM (py-evm behind JSON-RPC, from PyPI into .venv-evm),
# Parley's Vyper adjudicator deployed on it, the payment demo with a dispute, and every drill.
demo-evm: release evm-env
	$$($(SWIFT) build -c release --show-bin-path)/parley demo --chain evm --dispute cheat $(DEMO_ARGS)

drills-evm: release evm-env
	$$($(SWIFT) build -c release --show-bin-path)/parley drill --chain evm Examples/Drills/*.yaml

# A longer simulator campaign: make sim MINUTES=30
MINUTES ?= 10
sim: release
	$$($(SWIFT) build -c release --show-bin-path)/parley sim --minutes $(MINUTES)

clean:
	rm -rf .build .build-fuzz

# The local Ethereum dev chain (Tools/evm-devnet/README.md: py-evm served over JSON-RPC, as
# anvil or geth --dev would) and the Vyper compiler, in a virtual environment of their own
# made here when missing. `make evm-selftest` starts the devnet and checks every method.
EVM_VENV := .venv-evm
$(EVM_VENV)/.installed: Tools/evm-devnet/requirements.txt
	@python3 -m venv $(EVM_VENV) 2>/dev/null || { \
	  echo "Installing python3-venv (apt-get)"; export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q python3-venv || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; }; \
	  python3 -m venv $(EVM_VENV); }
	$(EVM_VENV)/bin/pip install -q -r Tools/evm-devnet/requirements.txt
	@touch $@

.PHONY: evm-env evm-selftest

evm-env: $(EVM_VENV)/.installed

evm-selftest: evm-env
	$(EVM_VENV)/bin/python Tools/evm-devnet/selftest.py

# Recompile Contracts/*.vy with the pinned vyper: `contracts` writes Contracts/build/ and
# Sources/ParleyEthereum/ContractArtifacts.swift; `contracts-check` fails if they differ.
contracts: evm-env
	$(EVM_VENV)/bin/python Tools/contracts/build.py

contracts-check: evm-env
	$(EVM_VENV)/bin/python Tools/contracts/build.py --check
