#!/usr/bin/env bash
# Prints the path of a working interpreter for the Lambda runtime's Python version (python3.13), falling back
# to python3.12 and then python3. pyenv shims answer "command not found" for versions that are installed but not
# selected, so each candidate is actually run before it is chosen.
set -u
# With --exact, only that version will do (sam build needs the runtime's own interpreter).
want="${1:-3.13}"
candidates=("python${want}" "$HOME"/.pyenv/versions/"${want}"*/bin/python"${want}")
[ "${2:-}" = "--exact" ] || candidates+=(python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 python3)
for candidate in "${candidates[@]}"; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  if "$path" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then
    echo "$path"; exit 0
  fi
done
echo "no Python >= 3.11 found" >&2
exit 1
