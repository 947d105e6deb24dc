"""Regenerate the sample events in events/ from the sample photos in events/samples/.

Run ``python events/build_events.py`` after the samples change. Each event file is one entry shape of
the Lambda function (see handler/request.py); ``sam local invoke -e events/<file>`` and the tests use
the same files. The S3 events name objects that ``s3_seed_objects()`` lists, which the tests upload
to mocked buckets before invoking.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = EVENTS_DIR / "samples"
INPUT_BUCKET = "fashion-seg-input"
"""Bucket the S3 events and s3:// URIs point at; tests create it with moto."""

MANIFEST_PRODUCT = "sample-001"
BATCH_PRODUCT = "sample-002"
MULTIPART_BOUNDARY = "fashion-seg-sample-boundary"


def read_sample(name: str) -> bytes:
    """Return the bytes of events/samples/<name>."""
    return (SAMPLES_DIR / name).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def s3_seed_objects() -> dict[str, bytes]:
    """List the objects the S3 events expect in INPUT_BUCKET: {key: bytes}."""
    manifest_one = {
        "images": ["front.jpg", "back.jpg", "detail.jpg", "packshot.png"],
        "threshold": 0.5,
        "category": "t-shirt",
    }
    manifest_two = {"images": ["packshot.png", f"s3://{INPUT_BUCKET}/incoming/{MANIFEST_PRODUCT}/front.jpg"]}
    objects = {
        f"incoming/{MANIFEST_PRODUCT}/{name}": read_sample(name)
        for name in ("front.jpg", "back.jpg", "detail.jpg", "packshot.png")
    }
    objects[f"incoming/{BATCH_PRODUCT}/packshot.png"] = read_sample("packshot.png")
    objects[f"incoming/{MANIFEST_PRODUCT}/manifest.json"] = json.dumps(manifest_one).encode()
    objects[f"incoming/{BATCH_PRODUCT}/manifest.json"] = json.dumps(manifest_two).encode()
    return objects


def multipart_body(files: dict[str, str], fields: dict[str, str]) -> bytes:
    """Encode a multipart/form-data body: files maps field name to sample name."""
    parts: list[bytes] = []
    for field, sample in files.items():
        content_type = "image/png" if sample.endswith(".png") else "image/jpeg"
        header = (
            f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{sample}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(header.encode() + read_sample(sample) + b"\r\n")
    for field, value in fields.items():
        parts.append(
            f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(f"--{MULTIPART_BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def rest_event(
    path: str, body: str, *, content_type: str, is_base64: bool, query: dict[str, str] | None = None
) -> dict[str, Any]:
    """Build an API Gateway REST API (payload 1.0) proxy event."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": content_type, "Host": "example.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Content-Type": [content_type]},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {key: [value] for key, value in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "apiId": "1234567890",
            "identity": {"sourceIp": "192.0.2.1", "userAgent": "build_events"},
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def http_event(path: str, body: str, *, content_type: str, is_base64: bool) -> dict[str, Any]:
    """Build an API Gateway HTTP API (payload 2.0) event on the $default stage."""
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": content_type, "host": "example.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "example.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "build_events",
            },
            "requestId": "id-v2-sample",
            "routeKey": f"POST {path}",
            "stage": "$default",
            "timeEpoch": 1733300000000,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def s3_notification_event(key: str) -> dict[str, Any]:
    """Build an S3 ObjectCreated:Put notification; the key is URL-encoded as S3 sends it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2024-12-04T08:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "EXAMPLE"},
                "requestParameters": {"sourceIPAddress": "192.0.2.1"},
                "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "manifest-uploaded",
                    "bucket": {
                        "name": INPUT_BUCKET,
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": f"arn:aws:s3:::{INPUT_BUCKET}",
                    },
                    "object": {
                        "key": key,
                        "size": 120,
                        "eTag": "0123456789abcdef0123456789abcdef",
                        "sequencer": "0A1B2C3D4E5F678901",
                    },
                },
            }
        ]
    }


def s3_batch_event(key: str) -> dict[str, Any]:
    """Build an S3 Batch Operations invocation (schema 2.0) with one task."""
    return {
        "invocationSchemaVersion": "2.0",
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce", "userArguments": {}},
        "tasks": [{"taskId": "dGFza2lkZ29lc2hlcmUK", "s3Key": key, "s3VersionId": None, "s3Bucket": INPUT_BUCKET}],
    }


def build_events() -> dict[str, dict[str, Any]]:
    """Build every sample event: {file name: event}."""
    front, back = b64(read_sample("front.jpg")), b64(read_sample("back.jpg"))
    form = multipart_body({"file1": "front.jpg", "file2": "back.jpg"}, {"threshold": "0.5", "category": "top"})
    legacy_form = multipart_body({"file1": "front.jpg", "file2": "back.jpg", "file3": "detail.jpg"}, {})
    form_type = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    s3_uris = [
        f"s3://{INPUT_BUCKET}/incoming/{MANIFEST_PRODUCT}/front.jpg",
        f"s3://{INPUT_BUCKET}/incoming/{MANIFEST_PRODUCT}/packshot.png",
    ]
    return {
        "api-rest-json.json": rest_event(
            "/segment",
            b64(json.dumps({"images": [front], "threshold": 0.5, "category": "tee"}).encode()),
            content_type="application/json",
            is_base64=True,
        ),
        "api-http-json.json": http_event(
            "/segment",
            json.dumps({"images": [f"data:image/jpeg;base64,{front}", back], "category": "top"}),
            content_type="application/json",
            is_base64=False,
        ),
        "api-multipart.json": http_event("/segment", b64(form), content_type=form_type, is_base64=True),
        "api-predict-legacy.json": rest_event(
            "/predict",
            b64(legacy_form),
            content_type=form_type,
            is_base64=True,
            query={"minPredictionValue": "-0.5"},
        ),
        "api-s3-uri.json": http_event(
            "/segment",
            json.dumps({"images": s3_uris, "threshold": 0.4}),
            content_type="application/json",
            is_base64=False,
        ),
        "s3-manifest.json": s3_notification_event(f"incoming/{MANIFEST_PRODUCT}/manifest.json"),
        "s3-batch.json": s3_batch_event(f"incoming/{BATCH_PRODUCT}/manifest.json"),
        "direct.json": {
            "images": [b64(read_sample(name)) for name in ("packshot.png", "front.jpg", "back.jpg", "detail.jpg")],
            "threshold": 0.5,
            "category": None,
            "product_id": "sample-direct",
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=EVENTS_DIR, help="folder to write the event files into (default: events/)"
    )
    args = parser.parse_args(argv)
    for name, event in build_events().items():
        (args.out / name).write_text(json.dumps(event, indent=2) + "\n")


if __name__ == "__main__":
    main()
