# HealMyDocker. `make run` heals containers labelled healme=true on the
# local Docker; `make test` runs every test against the real engine.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
DATA_DIR ?= .data

.PHONY: all build run test lint bench image docker-check clean

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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

bench: docker-check build
	$(BUILD) -o bin/floor ./bench/floor
	$(BUILD) -o bin/hmdbench ./bench/cmd/hmdbench
	./bin/hmdbench -healer bin/healer -floor bin/floor -out BENCHMARKS.md

image: build
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) -t healmydocker:local .

clean:
	rm -rf bin
