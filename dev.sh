#!/usr/bin/env sh
# One-command set-up on a fresh machine, then run the server or the tests.
#   ./dev.sh serve [server args...]   set up .venv if needed, then run the MCP server (stdio)
#   ./dev.sh test  [pytest args...]   set up .venv (with test extras) if needed, then run the test suite
# TORCH_SPEC overrides the torch requirement installed first (default torch==2.13.0).
set -eu
cd "$(dirname "$0")"
cmd="${1:-}"
[ $# -gt 0 ] && shift
VENV="${ML_LAB_VENV:-.venv}"
PY="${PYTHON:-python3}"

setup() {
    extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV" >&2
    fi
    stamp="$VENV/.ml-lab-installed$extras"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        # torch first: the project's torch range is then already satisfied, so pip pulls no other build.
        "$VENV/bin/python" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" >&2
        "$VENV/bin/python" -m pip install -q -e ".$extras" >&2
        touch "$stamp"
    fi
}

case "$cmd" in
    serve)
        setup ""
        exec "$VENV/bin/ml-lab-mcp" "$@"
        ;;
    test)
        setup "[test]"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh serve [server args] | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
