# Entry points; each target is a script in scripts/ so it also works without make. `make` alone lists them.
.PHONY: help run test check prepare lint reset check-quickstart package check-package bench checkov fuzz
.DEFAULT_GOAL := help

help:     ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / { printf "  make %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run:      ## Azurite + handler (standalone, timer running) on 127.0.0.1:7071; dev profile, shared with make test
	./scripts/run-local.sh

test:     ## the whole suite against real Azurite, in a loopback-only namespace (installs what it needs first)
	./scripts/test.sh

check:    ## lint, then the whole suite: what to run before every commit
	./scripts/lint.sh
	./scripts/test.sh

prepare:  ## install every tool the tests and checks need (Azurite, crates, chromium, pinned Python tools, Debian packages)
	./scripts/prepare.sh all

reset:    ## delete make run's Azurite data (.azurite/); refuses while make run is running
	./scripts/reset-local.sh

check-quickstart: ## run the README's quickstart against the dev loop (loopback-only netns) and compare its outputs
	./scripts/check-quickstart.sh

lint:     ## cargo fmt --check, clippy -D warnings, no OpenSSL, no URLs in the lockfile, Azurite --disableTelemetry, shellcheck
	./scripts/lint.sh

checkov:  ## checkov over infra/ (pinned, installed by scripts/prepare.sh checkov)
	./scripts/checkov.sh

fuzz:     ## schemathesis (pinned) from GET /api/openapi.json against the handler and its own Azurite, 127.0.0.1 only
	./scripts/fuzz.sh

package:  ## one zip for zip deploy: host.json, every function.json and the static (musl) handler binary
	./infra/package.sh

check-package: ## make package, then run the packaged handler in a Debian 11 root against Azurite (root only)
	./scripts/check-package.sh

bench:    ## the benchmarks (bench/run.py, docs/performance.md): own Azurite, release build; never part of CI
	python3 bench/run.py
