#!/usr/bin/env python3
"""Exit 0 when samconfig.toml holds a saved deploy configuration, 1 when it does not (`make deploy` then runs
`sam deploy --guided`). Saved means: the default environment's deploy section names a region. The repository's
samconfig.toml sets only defaults (stack name, capabilities, resolve_s3); `sam deploy --guided` saves the
answers, the region among them, into the same section. Standard library only: it runs before any venv."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def saved(path: Path, environment: str = "default") -> bool:
    """Whether ``path`` has a deploy section, in ``environment``, with a region."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    deploy = document.get(environment, {}).get("deploy", {}).get("parameters", {})
    return bool(deploy.get("region"))


if __name__ == "__main__":
    sys.exit(0 if saved(Path(sys.argv[1] if len(sys.argv) > 1 else "samconfig.toml")) else 1)
