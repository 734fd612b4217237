#!/usr/bin/env bash
# Sets up the Python venv holding the real Helm library (the helm-sdkpy
# package, Helm's Go code as a shared library) that tests/tests/helm.rs
# drives against testenv. Idempotent: an existing venv with the pinned
# version is left as it is.
#
# helm-sdkpy 0.1.32 declares Python >= 3.12 but loads and runs on 3.11, hence
# --ignore-requires-python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${HELM_VENV:-$root/target/helm-venv}"
version=0.1.32

have() {
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('helm-sdkpy') != '$version')" 2>/dev/null
}

if [ -x "$venv/bin/python" ] && have; then
    exit 0
fi
echo "helm venv: installing helm-sdkpy $version into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    --ignore-requires-python "helm-sdkpy==$version" cffi
have
