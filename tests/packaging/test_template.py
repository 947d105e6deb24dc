"""Static checks of template.yaml and the layer build files against the code they deploy."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads short-form intrinsics (!Ref X) as {"Ref": X} or {"Fn::Sub": ...}."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = yaml.load((REPO_ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    return dict(loaded)


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"]["SegmentFunction"]["Properties"])


def _makefile_target(name: str) -> str:
    text = (REPO_ROOT / "layers" / "Makefile").read_text()
    match = re.search(rf"^{re.escape(name)}:\n((?:\t.*\n|#.*\n)+)", text, flags=re.MULTILINE)
    if match is None:
        raise AssertionError(f"layers/Makefile has no target {name}")
    return match.group(1)


def test_function_runtime_is_python313(template: dict[str, Any]) -> None:
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"


def test_handler_names_existing_function(function: dict[str, Any]) -> None:
    module_path, _, attribute = function["Handler"].rpartition(".")
    source = REPO_ROOT / (module_path.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())

    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}

    assert attribute in names


def test_code_uri_is_handler_package(function: dict[str, Any]) -> None:
    assert function["CodeUri"].rstrip("/") == "handler"
    assert "cp -R . \"$(ARTIFACTS_DIR)/handler/\"" in _makefile_target("build-SegmentFunction")


def test_architecture_parameter_defaults_to_x86(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["Architecture"]

    assert parameter["Default"] == "x86_64"
    assert set(parameter["AllowedValues"]) == {"x86_64", "arm64"}
    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]


def test_api_requires_iam_by_default(template: dict[str, Any]) -> None:
    api = template["Resources"]["SegmentApi"]["Properties"]

    assert api["Auth"]["DefaultAuthorizer"] == {"Ref": "ApiAuth"}
    assert template["Parameters"]["ApiAuth"]["Default"] == "AWS_IAM"


def test_api_routes_segment_and_predict(function: dict[str, Any]) -> None:
    routes = {(event["Properties"]["Path"], event["Properties"]["Method"])
              for event in function["Events"].values() if event["Type"] == "Api"}

    assert routes == {("/segment", "post"), ("/predict", "post")}


def test_api_passes_multipart_and_png_as_binary(template: dict[str, Any]) -> None:
    media_types = template["Resources"]["SegmentApi"]["Properties"]["BinaryMediaTypes"]

    assert "multipart~1form-data" in media_types
    assert "image~1png" in media_types


def test_s3_trigger_filters_manifest_uploads(template: dict[str, Any], function: dict[str, Any]) -> None:
    s3_events = [event["Properties"] for event in function["Events"].values() if event["Type"] == "S3"]
    rules = {rule["Name"]: rule["Value"] for rule in s3_events[0]["Filter"]["S3Key"]["Rules"]}

    assert len(s3_events) == 1
    assert s3_events[0]["Bucket"] == {"Ref": "InputBucket"}
    assert rules["suffix"] == "manifest.json"
    assert rules["prefix"] == {"Ref": "InputPrefix"}
    assert template["Parameters"]["InputPrefix"]["Default"] == "incoming/"


def test_results_go_to_other_bucket(template: dict[str, Any], function: dict[str, Any]) -> None:
    resources = template["Resources"]
    input_name = resources["InputBucket"]["Properties"]["BucketName"]
    output_name = resources["OutputBucket"]["Properties"]["BucketName"]

    assert input_name != output_name
    assert function["Environment"]["Variables"]["OUTPUT_BUCKET"] == output_name


def test_environment_has_service_settings(function: dict[str, Any]) -> None:
    variables = function["Environment"]["Variables"]

    assert set(variables) >= {"POWERTOOLS_SERVICE_NAME", "MODEL_PATH", "INPUT_PREFIX", "OUTPUT_BUCKET", "OUTPUT_PREFIX"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "fashion-seg"


def test_model_path_matches_model_layer(function: dict[str, Any], template: dict[str, Any]) -> None:
    model_path = Path(function["Environment"]["Variables"]["MODEL_PATH"])
    layer_source = template["Resources"]["ModelLayer"]["Properties"]["ContentUri"]

    # Layers unpack under /opt; build-ModelLayer copies the file into <artifact>/model/.
    assert model_path.parent == Path("/opt/model")
    assert (REPO_ROOT / layer_source / model_path.name).is_file()
    assert model_path.name in _makefile_target("build-ModelLayer")


def test_function_policies_scoped(function: dict[str, Any]) -> None:
    statements = [statement for policy in function["Policies"] if "Statement" in policy
                  for statement in policy["Statement"]]
    write = next(statement for statement in statements if statement.get("Sid") == "WriteAndCleanUpResults")

    assert sorted(write["Action"]) == ["s3:DeleteObject", "s3:PutObject"]
    assert write["Resource"]["Fn::Sub"].endswith("/${OutputPrefix}*")
    assert all("*" not in action for statement in statements for action in statement["Action"])


def _pyproject_requirements() -> dict[str, Requirement]:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(line).name.lower(): Requirement(line) for line in project["dependencies"]}


def _layer_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "layers" / "deps" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            pins[requirement.name.lower()] = specifier.version
    return pins


def test_layer_pins_satisfy_pyproject() -> None:
    declared = _pyproject_requirements()
    pins = _layer_pins()

    # boto3 comes from the Lambda runtime; tqdm serves only the CLI.
    for name in set(declared) - {"boto3", "tqdm"}:
        assert name in pins, f"{name} is a runtime dependency but not pinned in layers/deps/requirements.txt"
        assert declared[name].specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {declared[name]}"
