"""The template is publishable to the AWS Serverless Application Repository (SAR), as far as that can be known
offline: its AWS::ServerlessRepo::Application metadata obeys the documented constraints, it uses only resource
types SAR accepts, and its functions' policies are SAM policy templates (which SAR deploys without asking the
user to acknowledge anything) or inline statements (acknowledged with CAPABILITY_IAM, README: Deploying from the
Serverless Application Repository).

Sources:
- Metadata constraints: AWS SAM Developer Guide, "AWS SAM template Metadata section properties"
  (docs.aws.amazon.com/serverless-application-model/latest/developerguide/
  serverless-sam-template-publishing-applications-metadata-properties.html).
- Resource types: SAR Developer Guide, "List of Supported AWS Resources"
  (docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html).
- Policy templates: the SAM policy templates (samtranslator's policy_templates.json, read here from the same
  aws-sam-translator the SAM CLI uses); SAR's guide "Using AWS SAM with the AWS Serverless Application
  Repository" says applications using them need no special acknowledgment."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.policy_templates_data import __file__ as policy_templates_package
from samtranslator.translator.transform import transform

from postback_relay_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]

# The types this template uses (as written, and after the SAM transform) that the SAR list names.
SAR_SUPPORTED = {
    "AWS::Serverless::Function",
    "AWS::Serverless::HttpApi",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::DynamoDB::Table",
    "AWS::IAM::Role",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::Route53::RecordSet",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
}
# Used here but not confirmed against the SAR list (the sweep's ScheduleV2 event becomes one). SAR's validator
# has lagged SAM before (aws/aws-sam-cli#4543: ScheduleV2 on a state machine); README, Publishing, says what to
# do if `sam publish` refuses it. A second unconfirmed type must be looked up before it is added.
UNCONFIRMED = {"AWS::Scheduler::Schedule"}
# Resources that make SAR ask the deployer to acknowledge IAM roles or resource policies (the same guide).
ACKNOWLEDGED = {"AWS::IAM::Role": "CAPABILITY_IAM", "AWS::Lambda::Permission": "CAPABILITY_RESOURCE_POLICY"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def packaged() -> dict[str, Any]:
    """The template as `sam package` uploads it (code on S3), transformed as CloudFormation transforms it."""
    from samtranslator.yaml_helper import yaml_parse

    document = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    for resource in document["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://packaging-bucket/postback-relay/0123456789abcdef"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    import os

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    transformed: dict[str, Any] = transform(copy.deepcopy(document), {}, NoManagedPolicies())
    return transformed


def test_the_metadata_obeys_the_repositorys_constraints(template: dict[str, Any]) -> None:
    metadata = template["Metadata"]["AWS::ServerlessRepo::Application"]
    assert {"Name", "Description", "Author"} <= set(metadata)  # required
    assert re.fullmatch(r"[a-zA-Z0-9\-]+", metadata["Name"]) and len(metadata["Name"]) <= 140
    assert 1 <= len(metadata["Description"]) <= 256
    assert re.fullmatch(r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$", metadata["Author"])
    assert len(metadata["Author"]) <= 127
    assert len(metadata["Labels"]) <= 10
    assert all(re.fullmatch(r"^[a-zA-Z0-9+\-_:\/@]+$", label) and len(label) <= 127 for label in metadata["Labels"])
    assert all(not isinstance(value, dict) for value in metadata.values()), "no intrinsic functions here"


def test_the_licence_and_readme_are_local_files_sam_package_uploads(template: dict[str, Any]) -> None:
    metadata = template["Metadata"]["AWS::ServerlessRepo::Application"]
    licence = ROOT / metadata["LicenseUrl"]
    assert licence.is_file() and licence.stat().st_size < 5 * 1024 * 1024
    assert metadata["SpdxLicenseId"] == "MIT" and licence.read_text(encoding="utf-8").startswith("MIT License")
    readme = ROOT / metadata["ReadmeUrl"]
    assert readme.is_file() and readme.stat().st_size < 5 * 1024 * 1024
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'license = "{metadata["SpdxLicenseId"]}"' in project


def test_only_resource_types_the_repository_accepts(template: dict[str, Any], packaged: dict[str, Any]) -> None:
    written = {resource["Type"] for resource in template["Resources"].values()}
    created = {resource["Type"] for resource in packaged["Resources"].values()}
    assert (written | created) - SAR_SUPPORTED == UNCONFIRMED


def test_the_capabilities_a_deployer_acknowledges_are_the_ones_the_readme_names(packaged: dict[str, Any]) -> None:
    created = {resource["Type"] for resource in packaged["Resources"].values()}
    needed = {ACKNOWLEDGED[kind] for kind in created if kind in ACKNOWLEDGED}
    assert needed == {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(capability in readme for capability in needed)


def test_every_policy_is_a_sam_policy_template_or_an_inline_statement(template: dict[str, Any]) -> None:
    path = Path(policy_templates_package).parent / "policy_templates.json"
    known = set(json.loads(path.read_text(encoding="utf-8"))["Templates"])
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"].get("Policies", []):
            assert isinstance(policy, dict) and len(policy) == 1, f"{name}: {policy!r}"
            [kind] = policy
            assert kind == "Statement" or kind in known, f"{name}: {kind} is not a SAM policy template"


def test_the_packaged_template_transforms(packaged: dict[str, Any]) -> None:
    functions = [r for r in packaged["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) >= 3
    assert all(f["Properties"]["Code"]["S3Bucket"] == "packaging-bucket" for f in functions)
