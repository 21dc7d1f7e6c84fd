#!/usr/bin/env bash
# Checks the Prometheus side of the compose deployment with promtool:
# the config (and the rule files it names), the alert rules, and the rules'
# unit tests. Exits non-zero on the first failure.
#
#   bash .ci/install-promtool     # once: promtool onto PATH
#   bash deploy/check.sh          # PROMTOOL=/path/to/promtool to use another
set -euo pipefail
cd "$(dirname "$0")/prometheus"

promtool=${PROMTOOL:-promtool}
if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "deploy/check.sh: $promtool not found (run .ci/install-promtool, or set PROMTOOL)" >&2
  exit 1
fi
"$promtool" --version 2>&1 | head -1

echo "== promtool check config prometheus.yml"
"$promtool" check config prometheus.yml
echo "== promtool check rules alerts.yml"
"$promtool" check rules alerts.yml
echo "== promtool test rules alerts_test.yml"
"$promtool" test rules alerts_test.yml
