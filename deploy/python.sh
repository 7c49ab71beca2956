#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter, so `make` finds one by itself on a fresh machine:
# $PYTHON if set, else python3.12 on the PATH (when it really runs: a pyenv shim may name a
# version that is installed but not selected), else pyenv's newest installed 3.12.
set -euo pipefail
for candidate in ${PYTHON:-} python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
  if [[ -n "$candidate" ]] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
echo "python.sh: no Python 3.12 found; install it (e.g. pyenv install 3.12) or set PYTHON" >&2
exit 1
