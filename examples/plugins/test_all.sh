#!/usr/bin/env bash
# Install every example plugin with the local scratchlm packages, then run, in each
# plugin's folder, its own tests plus the scratchlm conformance suite over what it registers:
#
#     pytest -p llm_core.testing        (each pyproject's scratchlm_plugins ini limits the suite)
#
# Usage: examples/plugins/test_all.sh [PYTHON]
#   PYTHON: the interpreter of a virtual environment that already has torch
#   (nox: session.run("bash", "examples/plugins/test_all.sh", python)).
#   Without it, a fresh venv is made in .venv-plugins with torch==${SCRATCHLM_TORCH:-2.13.0}.
# Use a dedicated environment: installing the plugins changes what other packages' tests
# see (for example `lion` joins the optimizers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${1:-}
if [ -z "$python" ]; then
    python3 -m venv "$root/.venv-plugins"
    python="$root/.venv-plugins/bin/python"
    "$python" -m pip install -q "torch==${SCRATCHLM_TORCH:-2.13.0}"
fi
# pip caches wheels built from local directories under their file:// URL, so a second install
# of an unchanged version number would reuse a stale build of the scratchlm packages.
export PIP_NO_CACHE_DIR=1
# The plugins require llm-* by name (llm-core>=0.2,<0.3); these constraints resolve every
# llm-* name to this checkout, so none comes from an index (nox -s index tests the index way).
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
for package in core data attention model train finetune eval; do
    echo "llm-$package @ file://$root/packages/llm-$package" >> "$constraints"
done
plugins=(scratchlm-lion scratchlm-relu2 scratchlm-parallel scratchlm-rouge scratchlm-hello)
"$python" -m pip install -q -c "$constraints" "$root/packages/llm-train" "$root/packages/llm-eval" pytest
for plugin in "${plugins[@]}"; do
    "$python" -m pip install -q -c "$constraints" "$here/$plugin[test]"
done
"$python" -m llm_core.cli plugins
status=0
for plugin in "${plugins[@]}"; do
    echo "== $plugin: pytest -p llm_core.testing"
    (cd "$here/$plugin" && "$python" -m pytest -p llm_core.testing -q -p no:cacheprovider) || status=1
done
exit $status
