# wxlogin — make targets. `make help` lists them.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
NPM         ?= npm
PLAYGROUND  := internal/playground/web

.PHONY: help run test test-short generate playground check-generate lint fakewechat

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

run: ## serve in dev mode: SQLite file ./wxlogin.db and a built-in fake WeChat, on :8080
	$(GO) run .

fakewechat: ## run the fake WeChat on its own, on 127.0.0.1:9090
	$(GO) run . fakewechat

test: ## every test, with the race detector, on SQLite and (when reachable) MariaDB, and the playground in Chromium
	$(GO) test -race -count=1 ./...
	@if [ -f test-artifacts/playground.png ]; then echo "playground screenshot: test-artifacts/playground.png"; fi

test-short: ## the tests without the slow ones
	$(GO) test -short -count=1 ./...

generate: ## regenerate code: ent first, then gqlgen (it reads ent's types), then the playground's assets
	$(GO) generate ./ent
	$(GO) generate ./graph
	$(MAKE) --no-print-directory playground

playground: ## build GraphiQL from the npm lockfile into internal/playground/dist (embedded in the binary)
	cd $(PLAYGROUND) && $(NPM) ci --ignore-scripts --no-audit --no-fund && $(NPM) run --silent build

check-generate: generate ## fail when regenerating changes any committed file
	@changed=$$(git status --porcelain -- ent graph go.mod go.sum internal/playground); \
	if [ -n "$$changed" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; echo "$$changed"; \
		git --no-pager diff --stat -- ent graph internal/playground; exit 1; \
	fi

lint: ## gofmt, go vet, staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
