#!/usr/bin/env bash
# CI helper: install and admit the four pinned real agent CLIs (claude-code, codex,
# mini-swe-agent, pi) for the hermetic scripted-model lane.
#
# Everything lives outside the repo under ${CTO_HARNESS_CLIENT_CACHE:-$HOME/.cache/cto-harness-clients}:
#   home/  the harness home the clients are installed into and admitted in
#          (tests/clients finds it there, or via CTO_HARNESS_CLIENTS_HOME)
#   npm/   npm's download cache;  pip/  pip's download cache
# A repeated run re-verifies each install (tree + digest) and reinstalls nothing, so a
# restored cache makes this take seconds; a cold install takes a minute or two.
# Needs: the harness installed in the current Python, node + npm >= 20 on PATH.
set -euo pipefail

cache="${CTO_HARNESS_CLIENT_CACHE:-$HOME/.cache/cto-harness-clients}"
mkdir -p "$cache/home" "$cache/npm" "$cache/pip"
export CTO_HARNESS_HOME="$cache/home"
export npm_config_cache="$cache/npm"
export PIP_CACHE_DIR="$cache/pip"
export npm_config_update_notifier=false

clients="${CTO_HARNESS_CLIENTS:-claude-code codex mini-swe-agent pi}"
status=0
for name in $clients; do
  echo "== $name" >&2
  start=$(date +%s)
  if python -m cto_harness provider install "$name"; then
    echo "== $name ok ($(( $(date +%s) - start )) s)" >&2
  else
    echo "== $name FAILED" >&2
    status=1
  fi
done
echo "CTO_HARNESS_CLIENTS_HOME=$cache/home"
exit "$status"
