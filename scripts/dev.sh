#!/usr/bin/env bash
# Set-up on a fresh machine, then one of:
#   main   simulate a week of logs and run the nightly DAG for the next day
#   test   run the test suite
# Set-up (idempotent): Java 17+ check, .venv with Python 3.11, pinned install (constraints.txt,
# torch==2.13.0 from the local CPU wheel first so nothing pulls a CUDA build), pip check.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

need_java() {
  if ! command -v java >/dev/null 2>&1; then
    echo "error: Java 17+ is required by Spark and was not found on PATH" >&2; exit 1
  fi
  local major
  major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1") ? v[2] : v[1]; exit}')
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    echo "error: Java 17+ is required by Spark, found: $(java -version 2>&1 | head -1)" >&2; exit 1
  fi
}

setup() {
  need_java
  local py=${PYTHON:-python3.11}
  command -v "$py" >/dev/null 2>&1 || { echo "error: $py not found (hintrl needs Python 3.11)" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  local stamp="$VENV/.hintrl-installed" want
  want=$(cat constraints.txt setup.cfg | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.3"
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
    "$VENV/bin/python" -m pip check
    echo "$want" > "$stamp"
  fi
}

setup
export PATH="$VENV/bin:$PATH"
case "${1:-}" in
  main)
    export HINTRL_HOME="${HINTRL_HOME:-$ROOT/.hintrl}"
    FIRST=${HINTRL_FIRST_DS:-2026-11-01}
    NIGHTLY=$(python -c "import datetime as d; print(d.date.fromisoformat('$FIRST') + d.timedelta(days=7))")
    hintrl simulate --ds "$FIRST" --days 7
    hintrl nightly --ds "$NIGHTLY"
    ;;
  test)
    shift
    python -m pytest "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh main|test [pytest args]" >&2; exit 2
    ;;
esac
