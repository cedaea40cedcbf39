#!/usr/bin/env bash
# Lint the OpenAPI document (docs/openapi.json, which tests/test_openapi.py keeps equal to the
# live one) with Redocly CLI, at a pinned version installed from npm on first use under
# .venv/openapi-lint/ (git-ignored; `make clean` removes it). Needs node >= 20.19 and npm.
#
#   bash tests/lint_openapi.sh [document]      # exits non-zero on any error
#
# Rules: tests/redocly.yaml; the problems accepted on purpose: tests/.redocly.lint-ignore.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

REDOCLY_VERSION=2.77.0
TOOLS=${OPENAPI_LINT_TOOLS:-.venv/openapi-lint}
DOCUMENT=${1:-docs/openapi.json}
REDOCLY="$TOOLS/node_modules/.bin/redocly"

if [ "$(cat "$TOOLS/.version" 2>/dev/null)" != "$REDOCLY_VERSION" ] || [ ! -x "$REDOCLY" ]; then
    command -v npm >/dev/null || { echo "lint_openapi.sh: npm is needed (e.g. apt-get install npm)" >&2; exit 2; }
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$REDOCLY_VERSION" >&2
    echo "$REDOCLY_VERSION" > "$TOOLS/.version"
fi

# No telemetry, no update notice: a lint run talks to nobody.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec "$REDOCLY" lint --config tests/redocly.yaml --format=stylish "$DOCUMENT"
