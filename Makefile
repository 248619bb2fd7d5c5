# dmlrun: see README.md. `make test` is what CI runs.
GO        ?= go
BIN       ?= ./dmlrun
NP        ?= 4
TEST_TIMEOUT ?= 15m

.PHONY: all build test unit lint test-multihost bench bench-compare demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dmlrun

# The whole suite: formatting, vet, staticcheck, a tidy go.mod, then every
# test with the race detector.
test: lint unit

# Every test. The multi-host tests (network namespaces with sshd) need root,
# iproute2 and openssh-server; without them they skip, and this says so.
unit:
	@if [ "$$(id -u)" != 0 ]; then echo "NOTE: not root: the multi-host tests (make test-multihost) will be skipped"; fi
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# Only the tests across emulated hosts (network namespaces, sshd, tc).
test-multihost:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -v -run 'Multihost|Testbed|Bed' ./internal/testbed/ ./cmd/dmlrun/

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum: not tidy (the diff above is what go mod tidy would change); run go mod tidy"; exit 1; }

# Allreduce bandwidth sweep over NP local processes (nccl-tests layout).
bench: build
	$(BIN) bench allreduce -np $(NP)

# dmlrun against Open MPI (TCP) and torch.distributed gloo, where installed
# (bash ../shared/peers/setup.sh installs them).
bench-compare: build
	$(BIN) bench compare -np 2,4

# The main job on its built-in default: logistic regression on a synthetic
# data set, 4 local processes.
demo: build
	$(BIN) -np $(NP)

clean:
	rm -f $(BIN)
