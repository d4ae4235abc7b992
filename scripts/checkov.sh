#!/usr/bin/env bash
# checkov over infra/ (the Bicep templates), offline. Installs the pinned checkov
# (scripts/checkov-requirements.txt) with scripts/prepare.sh into a venv under PYTHON_TOOLS_DIR (by default
# ~/.cache/service-registry/), once per version of that file, and runs it with .checkov.yaml. Exit status: checkov's (1 when a check fails).
# What this proves and what it does not: infra/README.md ("Checked offline").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/prepare.sh" checkov
venv="$(tool_venv checkov "$REPO_ROOT/scripts/checkov-requirements.txt")"

# No Bridgecrew/Prisma account: nothing is uploaded, and --skip-download (in .checkov.yaml) keeps
# it from fetching guidelines. The JSON copy of the results gives the counts, and the parsing
# errors, which checkov reports but does not fail on: a file it cannot parse is a file not checked.
results="$(mktemp -d)"
trap 'rm -rf -- "$results"' EXIT
status=0
"$venv/bin/checkov" --config-file .checkov.yaml --directory infra --quiet \
  --output cli --output json --output-file-path "console,$results/results.json" "$@" || status=$?
"$venv/bin/python" - "$results/results.json" .checkov.yaml <<'PY' || status=1
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
global_skips = [l.split("-", 1)[1].strip() for l in open(sys.argv[2]) if l.strip().startswith("- CKV")]
print(f"checkov {summary['checkov_version']}: passed {summary['passed']}, failed {summary['failed']}, "
      f"skipped inline {summary['skipped']}, parsing errors {summary['parsing_errors']}; "
      f"checks off for the whole template (.checkov.yaml): {', '.join(global_skips)}")
if summary["parsing_errors"]:
    sys.exit("checkov could not parse a file under infra/ (above), so it was not checked")
PY
exit "$status"
