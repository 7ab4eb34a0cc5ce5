# HealMyDocker. `make run` heals containers labelled healme=true on the
# local Docker; `make test` runs every test against the real engine.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
DATA_DIR ?= .data
space    := $(subst ,, )

.PHONY: all build run test faults fuzz test-engines lint bench image docker-check clean

all: lint test

build:
	$(BUILD) -o bin/ ./cmd/...

run: build
	./bin/healer --data-dir $(DATA_DIR)

# The tests need the real Docker Engine: no engine, no green run.
docker-check:
	@docker info >/dev/null 2>&1 || { echo "FAIL: docker is unreachable (docker info failed); the tests need the real engine" >&2; docker info >&2; exit 1; }

test: docker-check
	$(GO) test -race -count=1 -timeout 15m ./...

# The fault suite: real processes on the real engine (-tags faults), and
# the fuzzers. Each fuzzer runs a fixed number of inputs (about 5 s each
# on an idle 2-core machine), not a fixed time: Go 1.26's fuzz coordinator
# can fail a target with "context deadline exceeded" when a time budget
# ends under load (golang/go#75804, fixed in Go 1.27). FUZZTIME=10m runs
# each for that long instead.
FUZZTIME ?=
FUZZ := internal/cleaner:FuzzStrip:250000x internal/config:FuzzPolicyFor:120000x internal/config:FuzzLoadEnv:25000x \
	internal/events:FuzzUnmarshal:500000x internal/events:FuzzSanitizeToken:400000x internal/docker:FuzzConvert:70000x \
	internal/notify:FuzzUntrustedLabels:17000x
faults: docker-check
	$(GO) test -race -count=1 -tags faults -run 'TestFault' -timeout 10m ./test/e2e
	@$(MAKE) --no-print-directory fuzz

fuzz:
	@set -e; for f in $(FUZZ); do \
		pkg=$${f%%:*}; rest=$${f#*:}; fn=$${rest%%:*}; budget=$(if $(FUZZTIME),$(FUZZTIME),$${rest#*:}); \
		echo "fuzz $$fn ($$pkg): $$budget"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$budget ./$$pkg; \
	done

# The end-to-end cases that touch the engine, against Docker 29 too: a
# private daemon built from its Go module (the newest Docker 29 release the
# module proxy serves: DOCKER29) and cached outside the repository.
DOCKER29 ?= v2.0.0-beta.24
ENGINE_TESTS := TestHealsLabelledUnhealthyContainer TestHealsContainerUnhealthyBeforeStart TestCrashedContainerIsStartedAgain \
	TestUserStopIsNeverUndone TestDependentGetsNetworkBack TestCleanerRemovesDuplicates TestCleanerKeepsLoneprefixed \
	TestCleanerWaitsForTheGrace TestCleanerDryRun TestSplitCleanerThroughSocketProxy TestEventsCommand TestFaultDockerDaemonRestart
ENGINE_COUNT ?= 1
test-engines: docker-check
	test/engine/run.sh $(DOCKER29) -race -count=$(ENGINE_COUNT) -tags faults -timeout 15m -run '^($(subst $(space),|,$(strip $(ENGINE_TESTS))))$$'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

bench: docker-check build image
	$(BUILD) -o bin/floor ./bench/floor
	$(BUILD) -o bin/hmdbench ./bench/cmd/hmdbench
	./bin/hmdbench -healer bin/healer -floor bin/floor -sizes 1,10,40 -out BENCHMARKS.md
	@{ echo; echo "## Bus and notifier throughput (in-process, file store)"; echo; \
	   echo 'Produced by `go test -run ^$$ -bench . -benchtime 20000x ./internal/bus` and `-benchtime 5000x ./internal/notify`:'; \
	   echo; echo '```'; \
	   $(GO) test -run '^$$' -bench . -benchtime 20000x ./internal/bus | grep -E '^Benchmark'; \
	   $(GO) test -run '^$$' -bench . -benchtime 5000x ./internal/notify | grep -E '^Benchmark'; \
	   echo '```'; } >> BENCHMARKS.md
	./bin/hmdbench -healer bin/healer -only datadir >> BENCHMARKS.md

# The image holds one binary: notifier and cleaner are links to it, and it
# picks the command by the name it is run as.
image: build
	rm -rf bin/image && mkdir -p bin/image
	cp bin/healer bin/image/healer
	ln -s healer bin/image/notifier
	ln -s healer bin/image/cleaner
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) -t healmydocker:local .

clean:
	rm -rf bin
