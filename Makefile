# latentserve — `make run` serves the shipped generators, `make test` runs the whole suite.
# Both bootstrap what they need: a venv with pinned installs (deploy/constraints.txt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROTO_SRC := proto/latentserve/v1/generator.proto
OIP_SRC   := proto/inference/grpc_predict_v2.proto
TS_DIR    := clients/typescript
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help venv browser test-browser-check run run-triton triton-up registry-init test lint proto bench soak lock gallery clean

help:
	@echo "make run          serve the shipped generators on 127.0.0.1:50051 (gRPC) and :8000 (HTTP)"
	@echo "make test         lint, type-check and run the whole test suite"
	@echo "make run-triton   serve through a local CPU tritonserver (see README)"
	@echo "make lint         ruff + mypy"
	@echo "make browser      install chromium + chromium-driver (apt, as root) for the explorer tests"
	@echo "make proto        regenerate the checked-in gRPC stubs from proto/"
	@echo "make bench        run the benchmarks (SCENARIO=name QUICK=1 optional)"
	@echo "make soak         soak a real server with every RPC, alias moves and the cache (SOAK_SECONDS, default 600)"

# The root project is the SDK (+ extras); the generators and their zoo are their own
# distribution (generators/pyproject.toml), installed editable beside it.
$(STAMP): pyproject.toml generators/pyproject.toml deploy/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c deploy/constraints.txt -e ".[server,train,ui,dev]" \
		-e ./generators
	touch $(STAMP) $(SERVE_STAMP)

venv: $(STAMP)

# `make run` needs only the service: SERVE_STAMP installs `.[server]` (about 0.5 GB, no torch,
# no test tools); `make test` (STAMP) adds torch, the generators, the explorer and the test tools.
SERVE_STAMP := $(VENV)/.installed-server
$(SERVE_STAMP): pyproject.toml deploy/constraints.txt
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; else \
	  echo "make run: installing what serving needs into $(VENV) (about 0.5 GB, 1-3 minutes; make test adds torch and the test tools)"; \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q --upgrade pip && \
	  $(BIN)/python -m pip install -q -c deploy/constraints.txt -e ".[server]" || exit 1; fi
	touch $(SERVE_STAMP)

# The browser tests (explorer, static page) drive Debian's chromium through its chromedriver.
# `make test` never installs system packages unasked: with Chromium absent it asks on a
# terminal, installs only where LATENTSERVE_INSTALL_BROWSER=yes (CI's .ci/run says so), and
# otherwise says that the browser tests will be skipped. `make browser` installs them (apt,
# as root); LATENTSERVE_CHROMIUM / LATENTSERVE_CHROMEDRIVER point at others.
APT_BROWSER := apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
HAVE_BROWSER := [ -x "$${LATENTSERVE_CHROMIUM:-/usr/bin/chromium}" ] && [ -x "$${LATENTSERVE_CHROMEDRIVER:-/usr/bin/chromedriver}" ]
CAN_APT := [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null

browser:
	@if $(HAVE_BROWSER); then echo "chromium and chromedriver are installed"; \
	elif $(CAN_APT); then $(APT_BROWSER); \
	else echo "install chromium and chromium-driver (e.g. sudo apt-get install chromium chromium-driver)"; exit 1; fi

test-browser-check:
	@if $(HAVE_BROWSER); then :; \
	elif $(CAN_APT) && [ "$$LATENTSERVE_INSTALL_BROWSER" = yes ]; then $(APT_BROWSER); \
	elif $(CAN_APT) && [ -t 0 ]; then \
		printf "The browser tests need Debian's chromium + chromium-driver (apt-get, about 0.5 GB). Install them now? [y/N] "; \
		read answer; case "$$answer" in [yY]*) $(APT_BROWSER);; \
		*) echo "make test: Chromium is absent: the browser tests will be skipped (make browser installs it)";; esac; \
	else echo "make test: Chromium is absent: the browser tests will be skipped (make browser installs it)"; fi

registry-init: $(SERVE_STAMP)
	$(BIN)/latentserve registry init

# HTTP beside gRPC on 8000 (LATENTSERVE_HTTP_PORT overrides it): curl, browsers, OIP clients.
run: registry-init
	LATENTSERVE_HTTP_PORT=$${LATENTSERVE_HTTP_PORT:-8000} $(BIN)/latentserve serve

triton-up: $(STAMP)
	$(BIN)/latentserve triton up

run-triton: registry-init
	LATENTSERVE_BACKEND=triton LATENTSERVE_TRITON_FLAVOR=python $(BIN)/latentserve serve

# mypy sees the package-dir mapping through a tree of links (latentserve.service → service/ ...).
TYPECHECK := .typecheck/latentserve
$(TYPECHECK): Makefile
	mkdir -p $(TYPECHECK)
	ln -sfn ../../core $(TYPECHECK)/core
	ln -sfn ../../service $(TYPECHECK)/service
	ln -sfn ../../promotion $(TYPECHECK)/promotion
	ln -sfn ../../clients/cli $(TYPECHECK)/cli
	ln -sfn ../../registry $(TYPECHECK)/registry
	ln -sfn ../../clients/python $(TYPECHECK)/client
	ln -sfn ../../clients/explore $(TYPECHECK)/explore
	ln -sfn ../../generators $(TYPECHECK)/generators
	ln -sfn ../../proto/latentserve/v1 $(TYPECHECK)/v1
	ln -sfn ../../proto/inference $(TYPECHECK)/inference

# The TypeScript client's packages, exactly as package-lock.json pins them (npm ci); where npm is
# absent the Node tests skip and say so.
TS_STAMP := $(TS_DIR)/node_modules/.package-lock.json
$(TS_STAMP): $(TS_DIR)/package-lock.json
	@if command -v npm >/dev/null; then cd $(TS_DIR) && npm ci --no-audit --no-fund; \
	else echo "make test: npm is absent: the TypeScript client tests will be skipped"; fi

test: $(STAMP) test-browser-check $(TYPECHECK) $(TS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/latentserve triton venv
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP) $(TYPECHECK)
	$(BIN)/ruff check .
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--mypy_out=proto --mypy_grpc_out=proto $(PROTO_SRC)
	# OIP messages only (handlers are registered from the service descriptor), in a descriptor
	# pool of their own: tritonclient and MLServer register the same inference.* names.
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=proto $(OIP_SRC)
	sed -i 's/_descriptor_pool.Default().AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
		proto/inference/grpc_predict_v2_pb2.py
	# The TypeScript client's code (clients/typescript/src/gen), when its packages are installed.
	@if [ -x $(TS_DIR)/node_modules/.bin/protoc-gen-es ]; then \
		$(BIN)/python -m grpc_tools.protoc -Iproto --es_out=$(TS_DIR)/src/gen --es_opt=target=ts \
			--plugin=protoc-gen-es=$(TS_DIR)/node_modules/.bin/protoc-gen-es $(PROTO_SRC); \
	else echo "make proto: $(TS_DIR)/node_modules absent (cd $(TS_DIR) && npm ci): TypeScript code not regenerated"; fi

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(QUICK),--quick) $(if $(PROFILE),--profile)

# Not part of `make test`: a real server under a mix of every RPC (good requests and client
# mistakes) for SOAK_SECONDS; writes bench/results/soak.json + soak.md, exits 1 if flagged.
SOAK_SECONDS ?= 600
# The alias soak-plain@production moves every SOAK_ALIAS_EVERY seconds; the response cache is on.
SOAK_ALIAS_EVERY ?= 60
soak: $(STAMP)
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS) --alias-every $(SOAK_ALIAS_EVERY)

# Re-pin deploy/constraints.txt from the current venv (torch pinned without its local label).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable \
		| sed -E 's/^([A-Za-z0-9_.-]+) @ file:.*\/[A-Za-z0-9_.]+-([0-9][^-]*)-.*$$/\1==\2/' \
		| sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' > deploy/constraints.txt

# The README pictures, drawn by the CLI from a temporary server on the shipped generators.
GALLERY := generators/gallery
gallery: registry-init
	mkdir -p $(GALLERY)
	$(BIN)/latentserve serve --port 50099 --metrics-port 0 --log-level WARNING & pid=$$!; \
	trap "kill $$pid" EXIT; \
	for i in $$(seq 60); do $(BIN)/latentserve models --address 127.0.0.1:50099 >/dev/null 2>&1 && break; sleep 1; done; \
	$(BIN)/latentserve edit --address 127.0.0.1:50099 --model sprites-vae --seeds 1,2,3 \
		--labels 0,1,2 --direction orientation --strengths=-6,-3,0,3,6 \
		--out $(GALLERY)/edit-orientation.png && \
	$(BIN)/latentserve interpolate --address 127.0.0.1:50099 --model shapes3d --seeds 1,2,3 \
		--labels 0 --steps 8 --method slerp --out $(GALLERY)/interpolate.png && \
	$(BIN)/latentserve sample --address 127.0.0.1:50099 --model digits-cvae --n 10 --seed 0 \
		--labels 0,1,2,3,4,5,6,7,8,9 --out $(GALLERY)/digits.png && \
	$(BIN)/latentserve interpolate --address 127.0.0.1:50099 --model digits-cvae --labels 3 \
		--seeds 1,2,3,4,1 --steps 10 --method slerp --scale 3 --fps 15 \
		--out $(GALLERY)/interpolate.gif

clean:
	rm -rf $(VENV) .venv-triton .venv-mlserver .latentserve .pytest_cache .mypy_cache .ruff_cache
