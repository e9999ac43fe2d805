#!/bin/sh
# The seed's name (CTO-WORK-017/018) for `cto-harness health`: `harness/evals/health.sh --json`.
# Uses $PYTHON (default python3) when `cto-harness` is not on PATH.
if command -v cto-harness >/dev/null 2>&1; then
    exec cto-harness health "$@"
fi
exec "${PYTHON:-python3}" -m cto_harness health "$@"
