"""One version, written once (postback_relay.__version__), carried by the package, the CLI, the template's
Serverless Application Repository metadata and the newest CHANGELOG heading."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from postback_relay import __version__
from postback_relay.ops import cli
from postback_relay_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]
# semver.org's regular expression for a version (without build metadata, which SAR does not take)
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?")
HEADING = re.compile(r"^## (\S+) - (\d{4}-\d{2}-\d{2})$", re.M)


def test_the_version_is_semantic() -> None:
    assert SEMVER.fullmatch(__version__)


def test_the_package_takes_its_version_from_the_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "postback_relay.__version__"}


def test_the_template_publishes_the_same_version() -> None:
    metadata = load_template()["Metadata"]["AWS::ServerlessRepo::Application"]
    assert metadata["SemanticVersion"] == __version__


def test_the_cli_says_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"postback-relay {__version__}"


def test_the_changelog_is_newest_first_with_the_current_version_on_top() -> None:
    releases = HEADING.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert releases, "CHANGELOG.md has no '## X.Y.Z - YYYY-MM-DD' heading"
    assert releases[0][0] == __version__
    versions = [tuple(int(part) for part in SEMVER.fullmatch(v).groups()) for v, _ in releases]  # type: ignore[union-attr]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    dates = [date for _, date in releases]
    assert dates == sorted(dates, reverse=True)


def test_the_upgrade_notes_live_in_the_changelog() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "### Upgrading from" in changelog and "click_id" in changelog
    assert "CHANGELOG.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_answers_every_prompt_of_the_guided_deploy() -> None:
    """Every parameter `sam deploy --guided` asks about is in the README's table of answers (by name, or in a
    `First` … `Last` range of the template's order), and so are the prompts that need more than Enter."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The first deploy, step by step") : readme.index("### Test with real Stripe")]
    order = list(load_template()["Parameters"])
    answered: set[str] = set()
    for row in re.findall(r"^\s*\| `Parameter (\w+)[^`]*`(?: … `Parameter (\w+)`)?", section, re.M):
        first, last = row
        answered.update(order[order.index(first) : order.index(last) + 1] if last else [first])
    for extra in re.findall(r"`(DomainName|CertificateArn|HostedZoneId) \[\]`", section):
        answered.add(extra)
    assert [name for name in order if name not in answered] == []
    assert "has no authentication. Is this okay? [y/N]` | **`y`**" in section
    assert "Deploy this changeset? [y/N]` | **`y`**" in section
