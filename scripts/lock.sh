#!/usr/bin/env bash
# Regenerate requirements.lock: every dependency of solderbench, the dev extra included, pinned with == and hashes.
#
#   bash scripts/lock.sh                          # keep the pins that still fit pyproject.toml, resolve the rest
#   bash scripts/lock.sh --upgrade                # move everything to the newest versions the indexes serve
#   bash scripts/lock.sh --upgrade-package pillow # move one package
#
# Needs uv (`pip install uv`, or UV=/path/to/uv). Extra indexes and find-links are read from pip's configuration
# (`pip config get global.extra-index-url` / `global.find-links`), so the lock resolves against the same packages
# pip installs from here; nothing about this machine is written into the repository.
# The lock is for CPython 3.11 on Linux x86_64 (manylinux_2_28): torch 2.14.1 is served for cp311 only.
# After updating: run the tests (tests/test_lock.py, tests/test_published.py), then commit pyproject.toml and
# requirements.lock together.
set -euo pipefail
cd "$(dirname "$0")/.."

UV="${UV:-uv}"
if ! command -v "$UV" >/dev/null 2>&1; then
  echo "scripts/lock.sh: uv not found; pip install uv, or set UV=/path/to/uv" >&2
  exit 2
fi
if command -v pip >/dev/null 2>&1; then PIP=(pip); else PIP=(python3 -m pip); fi

pip_config() {  # the value of one key of pip's configuration, empty when it is not set
  "${PIP[@]}" config get "$1" 2>/dev/null || true
}

sources=()
for url in $(pip_config global.extra-index-url); do sources+=(--extra-index-url "$url"); done
for link in $(pip_config global.find-links); do sources+=(--find-links "$link"); done

# uv writes this command (less the index URLs and find-links) as the lock's header.
"$UV" pip compile pyproject.toml --extra dev -o requirements.lock \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  ${sources[@]+"${sources[@]}"} --index-strategy unsafe-best-match \
  --no-emit-index-url --no-emit-find-links --generate-hashes "$@"
