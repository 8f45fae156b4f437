# wxlogin — make targets. `make help` lists them.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
NPM         ?= npm
# The soak's length (make soak); SOAK=3m for a trial.
SOAK        ?= 30m
PLAYGROUND  := internal/playground/web
CODEGEN     := tools/miniprogram-codegen
# What `make generate` writes, for check-generate.
GENERATED   := ent graph internal/persisted internal/wxclient internal/playground clients examples/miniprogram

.PHONY: test-tidb bench-tidb check-deploy check-migrations migration image help run test test-short reliability soak generate schema playground check-generate lint fakewechat audit-http bench bench-micro fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## serve in dev mode: SQLite file ./wxlogin.db and a built-in fake WeChat, on :8080
	$(GO) run .

fakewechat: ## run the fake WeChat on its own, on 127.0.0.1:9090
	$(GO) run . fakewechat

test: ## every test, with the race detector, on SQLite and (when reachable) MariaDB, the playground in Chromium; then the mini-program SDK's (node)
	@rm -f test-artifacts/browser-test-skipped.txt
	$(GO) test -race -count=1 ./...
	@if [ -f test-artifacts/playground.png ]; then echo "playground screenshot: test-artifacts/playground.png"; fi
	@if command -v node >/dev/null; then node --test clients/miniprogram/test/*.test.js; \
	elif [ "$$CI" = true ]; then echo "node is not installed: the mini-program SDK tests cannot run"; exit 1; \
	else echo "node is not installed: skipped the mini-program SDK tests (clients/miniprogram/test)"; fi
	@if [ -f test-artifacts/browser-test-skipped.txt ]; then echo; cat test-artifacts/browser-test-skipped.txt; fi

test-short: ## the tests without the slow ones
	$(GO) test -short -count=1 ./...

reliability: ## the reliability suite: real servers on MariaDB behind a fault proxy; database outages, WeChat faults, a killed instance, hostile clients (a few minutes; figures in test-artifacts/reliability)
	$(GO) test -tags reliability -count=1 -v -timeout 20m -skip TestSoak ./internal/reliability/...

soak: ## 30 minutes of mixed load (SOAK=3m for a trial), sampling memory, goroutines, files and connections each minute; not in CI
	SOAK=$(SOAK) $(GO) test -tags reliability -count=1 -v -timeout 3h -run TestSoak ./internal/reliability/...

generate: $(CODEGEN)/node_modules/.package-lock.json ## regenerate code: ent, gqlgen (it reads ent's types), the persisted query manifest, the Go client, the schema artifacts, the playground's assets, the mini-program SDK's documents and types (needs node)
	$(GO) generate ./ent
	$(GO) generate ./graph
	$(GO) generate ./internal/persisted
	$(GO) generate ./internal/wxclient
	$(MAKE) --no-print-directory schema
	$(MAKE) --no-print-directory playground
	node $(CODEGEN)/generate.mjs

schema: ## write the full SDL and the introspection JSON that client generators read, into clients/schema
	$(GO) run ./internal/schemaexport -out clients/schema

playground: ## build GraphiQL from the npm lockfile into internal/playground/dist (embedded in the binary)
	cd $(PLAYGROUND) && $(NPM) ci --ignore-scripts --no-audit --no-fund && $(NPM) run --silent build

# The code generators' npm packages, pinned by the lock file; reinstalled when it changes.
$(CODEGEN)/node_modules/.package-lock.json: $(CODEGEN)/package-lock.json
	cd $(CODEGEN) && $(NPM) ci --silent --no-audit --no-fund

check-generate: generate ## fail when regenerating changes any committed file
	@changed=$$(git status --porcelain -- $(GENERATED) go.mod go.sum); \
	if [ -n "$$changed" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; echo "$$changed"; \
		git --no-pager diff --stat -- $(GENERATED); exit 1; \
	fi

audit-http: ## graphql-http's audit of the GraphQL-over-HTTP spec against a dev server (needs node)
	bash tools/http-audit/run.sh

# The image's name, and what builds it: Docker when its daemon answers, else Podman.
IMAGE     ?= localhost/wxlogin:dev
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CONTAINER ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)

image: ## build the container image (Dockerfile, FROM scratch around a static binary) as IMAGE (localhost/wxlogin:dev), with Docker or else Podman
	rm -rf build/image && mkdir -p build/image/rootfs/etc/ssl/certs build/image/rootfs/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o build/image/rootfs/wxlogin .
	cp /etc/ssl/certs/ca-certificates.crt build/image/rootfs/etc/ssl/certs/
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

migration: ## write the next MySQL migration file from ent/schema's change: make migration NAME=what_changed (needs MariaDB on 127.0.0.1:3306)
	$(GO) run ./tools/migrations -name $(NAME)

check-migrations: ## fail when ent/schema and internal/database/migrations disagree (needs MariaDB on 127.0.0.1:3306)
	$(GO) run ./tools/migrations -check

bench-tidb: ## make bench's me and login scenarios on MariaDB, then on TiDB (started as make test-tidb starts it), in one run
	bash tools/tidb/run.sh bench -only me,login

test-tidb: ## the MySQL suite and the reliability suite on TiDB v8.5.6 (tidb-server built once per machine into ~/.cache/wxlogin-tidb: ~10 min the first time)
	bash tools/tidb/run.sh

check-deploy: ## decode deploy/kubernetes strictly into the Kubernetes API types and check them against what wxlogin serves and reads (a module of its own: deploy/check)
	cd deploy/check && $(GO) test -count=1 ./...

# Every fuzz target of outside input, as package:FuzzName (docs/fuzzing.md).
FUZZ_TARGETS := internal/auth:FuzzBearer internal/auth:FuzzWellFormed internal/auth:FuzzValidateCode internal/auth:FuzzClientIP \
	internal/opendata:FuzzDecrypt internal/opendata:FuzzServiceDecrypt internal/wechat:FuzzAnswer internal/wechat:FuzzClient \
	internal/config:FuzzLoad graph:FuzzParams graph:FuzzNegotiate graph:FuzzTransport \
	internal/wechatpush:FuzzOpen internal/persisted:FuzzPersistedQuery internal/persisted:FuzzCanonical internal/persisted:FuzzParseManifest
FUZZTIME ?= 10m

fuzz: ## run every fuzz target for FUZZTIME (10m) each, one after another (docs/fuzzing.md); crashers land in testdata/fuzz
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1 ./$$pkg || exit 1; \
	done

bench: ## the load harness on MariaDB (docs/benchmarks.md): each figure beside a baseline measured in the same run; BENCHFLAGS="-d 10s -profile dir" for more
	$(GO) run ./tools/bench $(BENCHFLAGS)

bench-micro: ## Go micro-benchmarks of the hot paths: tokens, session lookup, sealing, error mapping, and me beside { __typename } through the whole handler
	$(GO) test -run '^$$' -bench . -benchmem ./internal/auth ./internal/seal ./graph ./internal/server

lint: ## gofmt, go vet, staticcheck (the reliability suite's files included)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet -tags reliability ./...
	$(GO) run $(STATICCHECK) -tags reliability ./...
