#!/usr/bin/env bash
# The test command: installs what the tests need on a Debian machine (when it
# can: as root or with passwordless sudo), sets up the Helm venv, then runs
# `cargo test --workspace` with any extra arguments passed through.
set -euo pipefail
cd "$(dirname "$0")"

# git: the reconciler's sources and git daemon; postgresql: the operator's
# SQL tests; openssh-server: the Git-over-SSH tests; python3-venv: the Helm
# library's venv.
packages=(git postgresql openssh-server ca-certificates python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo)
    else
        echo "test.sh: missing Debian packages; install them with:" >&2
        echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

tests/helm/setup-venv.sh

exec cargo test --workspace "$@"
