"""src/Makefile, the package `sam build` deploys: run here as SAM runs it (`make build-<LogicalId>` with
ARTIFACTS_DIR), with the runtime's interpreter. What a cold start imports must be there, compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PYTHON = subprocess.run(
    [str(ROOT / "scripts" / "find-python.sh"), "3.13", "--exact"], capture_output=True, text=True, check=False
).stdout.strip()

pytestmark = pytest.mark.skipif(not RUNTIME_PYTHON, reason="the runtime's interpreter (python3.13) is not here")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = tmp_path_factory.mktemp("WebhookFunction")
    env = {**os.environ, "ARTIFACTS_DIR": str(built), "RUNTIME_PYTHON": RUNTIME_PYTHON}
    subprocess.run(["make", "-s", "-C", str(ROOT / "src"), "build-WebhookFunction"], env=env, check=True)
    return built


def test_the_package_holds_the_relay_and_its_dependencies_but_not_the_local_run(artifact: Path) -> None:
    assert (artifact / "postback_relay" / "handlers" / "http.py").is_file()
    assert (artifact / "aws_lambda_powertools").is_dir() and (artifact / "requests").is_dir()
    assert not (artifact / "postback_relay_dev").exists()
    assert not (artifact / "botocore").exists()  # the runtime's, matching its boto3, is used
    assert list(artifact.glob("wrapt/_wrappers.cpython-313-aarch64-linux-gnu.so"))  # wheels for arm64


def test_the_package_ships_click_js_for_get_click_js(artifact: Path) -> None:
    shipped = artifact / "postback_relay" / "web" / "click.js"
    assert shipped.read_bytes() == (ROOT / "src" / "postback_relay" / "web" / "click.js").read_bytes()


def test_every_module_is_compiled_for_the_runtime_as_an_unchecked_hash(artifact: Path) -> None:
    sources = [p for p in artifact.rglob("*.py") if "bin" not in p.relative_to(artifact).parts[:1]]
    assert len(sources) > 100
    assert [p for p in sources if not _compiled(p).exists()] == []
    header = _compiled(artifact / "postback_relay" / "handlers" / "http.py").read_bytes()[:8]
    flags = int.from_bytes(header[4:8], "little")
    assert flags == 0b01, "unchecked-hash: bit 0 (hash-based) set, bit 1 (check_source) clear"


def test_the_handlers_import_from_the_package_alone(artifact: Path) -> None:
    code = (
        "import postback_relay.handlers.http, postback_relay.handlers.retry, sys; "
        "print(sys.modules['postback_relay'].__file__)"
    )
    env = {"PYTHONPATH": str(artifact), "SECRET_ID": "s", "TABLE_NAME": "t", "PATH": os.environ.get("PATH", "")}
    # boto3 comes with the Lambda runtime; here, from the test environment, after the package.
    env["PYTHONPATH"] += os.pathsep + os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    result = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(artifact / "postback_relay" / "__init__.py")


def _compiled(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
