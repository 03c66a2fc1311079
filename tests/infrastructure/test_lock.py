"""src/requirements.txt, what `sam build` ships, is a lock: every package the functions import pinned with its
hashes, nothing unpinned, and the test environment runs exactly those versions. (`make lock-check` also
recompiles it against PyPI and fetches each wheel to check its hash; this is the part that needs no network.)"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# The Lambda runtime's environment, for the dependency markers.
RUNTIME = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
}


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from the lock's `name==version \\ --hash=sha256:…` entries."""
    text = (ROOT / "src" / "requirements.txt").read_text(encoding="utf-8")
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.strip().splitlines()[0] if block.strip() else ""
        if not first or first.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", first)
        assert match, f"not pinned with ==: {first!r}"
        entries[canonicalize_name(match.group(1))] = (
            match.group(2),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
        )
    return entries


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the requirements pull in on the runtime, from the installed packages' metadata."""
    seen: set[str] = set()
    pending = [(requirement, frozenset(requirement.extras)) for requirement in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        for raw in distribution(name).requires or []:
            dependency = Requirement(raw)
            wanted = not dependency.marker or any(
                dependency.marker.evaluate({**RUNTIME, "extra": extra}) for extra in extras or {""}
            )
            if wanted:
                pending.append((dependency, frozenset(dependency.extras)))
    return seen


def test_every_entry_is_pinned_with_hashes() -> None:
    entries = locked()
    assert entries, "the lock is empty"
    assert [name for name, (_, hashes) in entries.items() if not hashes] == []


def test_the_lock_holds_exactly_what_requirements_in_pulls_in() -> None:
    lines = (ROOT / "src" / "requirements.in").read_text(encoding="utf-8").splitlines()
    direct = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert all(r.marker is None or Marker(str(r.marker)).evaluate(RUNTIME) for r in direct)
    assert set(locked()) == closure(direct)


def test_the_lock_satisfies_requirements_in() -> None:
    lines = (ROOT / "src" / "requirements.in").read_text(encoding="utf-8").splitlines()
    entries = locked()
    for requirement in (Requirement(line) for line in lines if line.strip() and not line.startswith("#")):
        version, _ = entries[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement} is locked at {version}"


def test_the_tests_run_the_locked_versions() -> None:
    drift = {}
    for name, (version, _) in locked().items():
        try:
            installed = distribution(name).version
        except PackageNotFoundError:
            installed = "(not installed)"
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, "the test environment differs from what ships: make clean && make test"


def test_boto3_is_not_shipped_the_runtime_has_it() -> None:
    assert "boto3" not in locked()
    text = (ROOT / "src" / "requirements.in").read_text(encoding="utf-8")
    assert "boto3" in text.split("\n", 1)[0]  # the first comment says why
