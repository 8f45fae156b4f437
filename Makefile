# wxlogin — make targets. `make help` lists them.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
NPM         ?= npm
PLAYGROUND  := internal/playground/web

.PHONY: help run test test-short generate schema playground check-generate lint fakewechat audit-http

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

generate: ## regenerate code: ent, gqlgen (it reads ent's types), the persisted query manifest, the Go client, the schema artifacts, the playground's assets
	$(GO) generate ./ent
	$(GO) generate ./graph
	$(GO) generate ./internal/persisted
	$(GO) generate ./internal/wxclient
	$(MAKE) --no-print-directory schema
	$(MAKE) --no-print-directory playground

schema: ## write the full SDL and the introspection JSON that client generators read, into clients/schema
	$(GO) run ./internal/schemaexport -out clients/schema

playground: ## build GraphiQL from the npm lockfile into internal/playground/dist (embedded in the binary)
	cd $(PLAYGROUND) && $(NPM) ci --ignore-scripts --no-audit --no-fund && $(NPM) run --silent build

check-generate: generate ## fail when regenerating changes any committed file
	@changed=$$(git status --porcelain -- ent graph internal/persisted internal/wxclient internal/playground clients go.mod go.sum); \
	if [ -n "$$changed" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; echo "$$changed"; \
		git --no-pager diff --stat -- ent graph internal/persisted internal/wxclient internal/playground clients; exit 1; \
	fi

audit-http: ## graphql-http's audit of the GraphQL-over-HTTP spec against a dev server (needs node)
	bash tools/http-audit/run.sh

lint: ## gofmt, go vet, staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
