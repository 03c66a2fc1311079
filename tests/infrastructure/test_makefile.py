"""The Makefile's deploy path: `make deploy` asks (sam deploy --guided) only while no configuration is saved,
and neither `make build` nor src/Makefile packages anything without the runtime's interpreter. `sam` is a stub
that records its arguments; nothing reaches AWS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stub_tools(tmp_path: Path) -> Path:
    """A tools venv whose `sam` only logs what it was asked, and is up to date for make."""
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    sam = tools / "bin" / "sam"
    sam.write_text(f'#!/bin/sh\necho "sam $*" >> {tmp_path / "sam.log"}\n', encoding="utf-8")
    sam.chmod(0o755)
    (tools / ".installed").touch()
    return tools


def make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "-s", "-C", str(ROOT), *args], capture_output=True, text=True, env=env, check=False)


def sam_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "sam.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_the_first_deploy_is_guided_and_saves_to_samconfig(stub_tools: Path, tmp_path: Path) -> None:
    result = make("deploy", f"TOOLS_VENV={stub_tools}", f"RUNTIME_PYTHON={sys.executable}")
    assert result.returncode == 0, result.stderr
    assert "no saved deploy configuration in samconfig.toml" in result.stdout
    assert sam_calls(tmp_path) == ["sam build", "sam deploy --guided --config-file samconfig.toml"]


def test_a_saved_configuration_is_used_without_questions(stub_tools: Path, tmp_path: Path) -> None:
    saved = tmp_path / "samconfig.toml"
    saved.write_text(
        (ROOT / "samconfig.toml")
        .read_text(encoding="utf-8")
        .replace("[default.deploy.parameters]\n", '[default.deploy.parameters]\nregion = "eu-west-1"\n'),
        encoding="utf-8",
    )
    result = make("deploy", f"TOOLS_VENV={stub_tools}", f"RUNTIME_PYTHON={sys.executable}", f"SAMCONFIG={saved}")
    assert result.returncode == 0, result.stderr
    assert sam_calls(tmp_path) == ["sam build", f"sam deploy --config-file {saved}"]


def test_the_repositorys_samconfig_is_not_a_saved_configuration() -> None:
    script = [sys.executable, str(ROOT / "scripts" / "saved-deploy-config.py")]
    assert subprocess.run([*script, str(ROOT / "samconfig.toml")], check=False).returncode == 1
    assert subprocess.run([*script, "/nonexistent/samconfig.toml"], check=False).returncode == 1


@pytest.mark.parametrize("target", ["build", "deploy"])
def test_an_empty_runtime_python_stops_before_anything_is_built(target: str, stub_tools: Path, tmp_path: Path) -> None:
    result = make(target, f"TOOLS_VENV={stub_tools}", "RUNTIME_PYTHON=")
    assert result.returncode != 0
    assert "RUNTIME_PYTHON is empty: sam build needs python3.13" in result.stderr
    assert sam_calls(tmp_path) == []


def test_src_makefile_refuses_an_empty_runtime_python(tmp_path: Path) -> None:
    artifact = tmp_path / "WebhookFunction"
    artifact.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAKE")}, "ARTIFACTS_DIR": str(artifact)}
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "src"), "build-WebhookFunction", "RUNTIME_PYTHON="],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0 and "RUNTIME_PYTHON is empty" in result.stderr
    assert list(artifact.iterdir()) == []
