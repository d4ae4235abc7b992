# Entry points; each target is a script in scripts/ so it also works without make.
.PHONY: run test lint reset check-quickstart package check-package bench checkov fuzz

run:      ## Azurite + handler (standalone, timer running) on 127.0.0.1:7071; dev profile, shared with make test
	./scripts/run-local.sh

reset:    ## delete make run's Azurite data (.azurite/); refuses while make run is running
	./scripts/reset-local.sh

check-quickstart: ## run the README's quickstart against the dev loop (loopback-only netns) and compare its outputs
	./scripts/check-quickstart.sh

test:     ## the whole suite against real Azurite
	./scripts/test.sh

lint:     ## cargo fmt --check, clippy -D warnings, no OpenSSL, no URLs in the lockfile, shellcheck
	./scripts/lint.sh

checkov:  ## checkov over infra/ (pinned, installed into ~/.cache/service-registry on first use)
	./scripts/checkov.sh

fuzz:     ## schemathesis (pinned) from GET /api/openapi.json against the handler and its own Azurite, 127.0.0.1 only
	./scripts/fuzz.sh

package:  ## one zip for zip deploy: host.json, every function.json and the static (musl) handler binary
	./infra/package.sh

check-package: ## make package, then run the packaged handler in a Debian 11 root against Azurite (root only)
	./scripts/check-package.sh

bench:    ## issue 13 benchmarks (bench/run.py, docs/performance.md): own Azurite, release build; never part of CI
	python3 bench/run.py
