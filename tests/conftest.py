"""Shared fixtures: fake AWS credentials, Lambda context, sample events, mocked S3, JSON log capture."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from handler.cli import LocalContext

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"
SAMPLES_DIR = EVENTS_DIR / "samples"
OUTPUT_BUCKET = "fashion-seg-output"


def _load_build_events() -> Any:
    spec = importlib.util.spec_from_file_location("build_events", EVENTS_DIR / "build_events.py")
    assert spec is not None and spec.loader is not None  # the file ships with the repository
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_events = _load_build_events()
INPUT_BUCKET: str = build_events.INPUT_BUCKET


def load_event(name: str) -> dict[str, Any]:
    """Return a fresh copy of events/<name> as a dict."""
    return copy.deepcopy(json.loads((EVENTS_DIR / name).read_text()))


def event_names() -> list[str]:
    """Names of every sample event file in events/."""
    return sorted(path.name for path in EVENTS_DIR.glob("*.json"))


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point every AWS client at fake credentials and reset the handler's environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("OUTPUT_BUCKET", "INPUT_PREFIX", "OUTPUT_PREFIX", "CORS_ALLOW_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def lambda_context() -> LocalContext:
    from handler.cli import LocalContext

    return LocalContext(aws_request_id="test-request-0001")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Mocked S3 with the input bucket seeded for the sample events and an empty output bucket.

    Sets OUTPUT_BUCKET and yields a boto3 S3 client on the mock.
    """
    import boto3
    from moto import mock_aws

    from handler import storage

    with mock_aws():
        storage.s3_client.cache_clear()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=INPUT_BUCKET)
        client.create_bucket(Bucket=OUTPUT_BUCKET)
        for key, body in build_events.s3_seed_objects().items():
            client.put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)
        monkeypatch.setenv("OUTPUT_BUCKET", OUTPUT_BUCKET)
        yield client
    storage.s3_client.cache_clear()


def list_keys(client: Any, bucket: str) -> list[str]:
    """Return every key in a bucket, sorted."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def captured_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Redirect the handler's JSON logs into memory; call the fixture's value to read them."""
    from handler import app

    stream = io.StringIO()
    handler = cast(logging.StreamHandler, app.logger.registered_handler)  # Powertools' default handler
    previous_stream, previous_level = handler.setStream(stream), app.logger.log_level
    app.logger.setLevel("INFO")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    app.logger.setLevel(previous_level)
    handler.setStream(previous_stream)
