"""The fashion-seg console script: segment, batch and invoke."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from handler import cli, storage
from handler.categories import ACCEPTED_CATEGORIES
from tests.conftest import EVENTS_DIR, REPO_ROOT, SAMPLES_DIR, build_events, load_event


def sample_size(name: str) -> tuple[int, int]:
    with Image.open(SAMPLES_DIR / name) as image:
        return image.size


def test_segment_writes_masks_cutouts_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    names = ("front.jpg", "packshot.png")

    code = cli.main(
        ["segment", *(str(SAMPLES_DIR / name) for name in names), "--out", str(out), "--category", "sneakers"]
    )

    assert code == 0
    for index, name in enumerate(names):
        with Image.open(out / f"mask-{index}.png") as mask, Image.open(out / f"cutout-{index}.png") as cutout:
            assert (mask.mode, mask.size) == ("L", sample_size(name))
            assert (cutout.mode, cutout.size) == ("RGBA", sample_size(name))
    result = json.loads((out / "result.json").read_text())
    assert result["category"] == "shoes"
    assert result["images"][1]["mask"] == {"path": "mask-1.png"}
    assert result["timings_ms"]["encode"] > 0


def test_segment_rerun_replaces_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    photos = [str(SAMPLES_DIR / name) for name in ("front.jpg", "back.jpg", "detail.jpg")]
    assert cli.main(["segment", *photos, "--out", str(out)]) == 0

    code = cli.main(["segment", photos[0], "--out", str(out)])

    assert code == 0
    assert sorted(path.name for path in out.iterdir()) == ["cutout-0.png", "mask-0.png", "notes.txt", "result.json"]


def test_batch_failed_rerun_drops_results(tmp_path: Path) -> None:
    shutil.copy(SAMPLES_DIR / "front.jpg", tmp_path / "photo.jpg")
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "set", "images": ["photo.jpg"]}]))
    out = tmp_path / "out"
    assert cli.main(["batch", str(manifest), "--out", str(out)]) == 0
    (tmp_path / "photo.jpg").write_bytes(b"not a jpeg any more")

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    assert code == 1
    assert sorted(path.name for path in (out / "set").iterdir()) == ["error.json"]


def test_segment_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "out")])

    assert code == 2
    assert "nope.jpg not found" in capsys.readouterr().err


def test_segment_product_id_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "shirt-42"
    folder.mkdir()
    monkeypatch.chdir(folder)

    assert cli.main(["segment", str(SAMPLES_DIR / "packshot.png"), "--out", "."]) == 0
    assert json.loads((folder / "result.json").read_text())["product_id"] == "shirt-42"

    assert cli.main(["segment", str(SAMPLES_DIR / "packshot.png"), "--out", ".", "--product-id", "sku.7"]) == 0
    assert json.loads((folder / "result.json").read_text())["product_id"] == "sku.7"


@pytest.mark.parametrize(
    ("folder_name", "product_id"),
    [("has space", "has-space"), ("__draft #2", "draft-2"), ("x" * 200, "x" * 128)],
)
def test_segment_folder_name_sanitized(tmp_path: Path, folder_name: str, product_id: str) -> None:
    out = tmp_path / folder_name

    assert cli.main(["segment", str(SAMPLES_DIR / "packshot.png"), "--out", str(out)]) == 0

    assert json.loads((out / "result.json").read_text())["product_id"] == product_id


def test_segment_unusable_folder_name_random_id(tmp_path: Path) -> None:
    out = tmp_path / "###"

    assert cli.main(["segment", str(SAMPLES_DIR / "packshot.png"), "--out", str(out)]) == 0

    assert re.fullmatch(r"[0-9a-f]{32}", json.loads((out / "result.json").read_text())["product_id"])


def test_segment_bad_product_id_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(SAMPLES_DIR / "packshot.png"), "--out", str(tmp_path), "--product-id", "my product!"])

    assert code == 2
    assert "'my product!' is invalid" in capsys.readouterr().err


def test_segment_tiny_photo_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "icon.png")

    code = cli.main(["segment", str(tmp_path / "icon.png"), "--out", str(tmp_path / "out")])

    assert code == 2
    assert "8 x 8 pixels" in capsys.readouterr().err
    assert not (tmp_path / "out" / "result.json").exists()


def test_segment_unknown_category_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(SAMPLES_DIR / "front.jpg"), "--out", str(tmp_path), "--category", "spaceship"])

    assert code == 2
    assert "spaceship" in capsys.readouterr().err


def test_batch_bad_set_continues_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a manifest with a good set, a set with an undecodable photo, and another good set
    shutil.copy(SAMPLES_DIR / "front.jpg", tmp_path / "front.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    manifest = tmp_path / "sets.json"
    manifest.write_text(
        json.dumps(
            [
                {"id": "good-1", "images": ["front.jpg"], "category": "top"},
                {"id": "bad", "images": ["front.jpg", "broken.jpg"]},
                {"id": "good-2", "images": [str(SAMPLES_DIR / "detail.jpg")]},
            ]
        )
    )
    out = tmp_path / "out"

    # WHEN the batch runs
    code = cli.main(["batch", str(manifest), "--out", str(out)])

    # THEN both good sets have results, the bad one has error.json, and the exit code is 1
    assert code == 1
    assert (out / "good-1" / "result.json").is_file()
    assert (out / "good-2" / "result.json").is_file()
    with Image.open(out / "good-2" / "mask-0.png") as mask:
        assert mask.size == sample_size("detail.jpg")
    error = json.loads((out / "bad" / "error.json").read_text())["error"]
    assert error["code"] == "image_not_decodable"
    assert error["image_index"] == 1
    assert not (out / "bad" / "result.json").exists()
    assert "1 of 3 sets failed: bad" in capsys.readouterr().err


def test_batch_missing_photo_error_names_index(tmp_path: Path) -> None:
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "gap", "images": [str(SAMPLES_DIR / "detail.jpg"), "absent.jpg"]}]))
    out = tmp_path / "out"

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    assert code == 1
    error = json.loads((out / "gap" / "error.json").read_text())["error"]
    assert "absent.jpg not found" in error["message"]
    assert error["image_index"] == 1


def test_batch_nul_in_photo_path_fails_own_set(tmp_path: Path) -> None:
    manifest = tmp_path / "sets.json"
    detail = str(SAMPLES_DIR / "detail.jpg")
    manifest.write_text(json.dumps([{"id": "nul", "images": ["fr\u0000ont.jpg"]}, {"id": "after", "images": [detail]}]))
    out = tmp_path / "out"

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    assert code == 1
    error = json.loads((out / "nul" / "error.json").read_text())["error"]
    assert "invalid photo path" in error["message"]
    assert error["image_index"] == 0
    assert (out / "after" / "result.json").is_file()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a"}', "expected a JSON list"),
        ('[{"id": "../x", "images": []}]', "Product id"),
        ('[{"id": "a", "images": ["x.jpg"]}, {"id": "a", "images": ["y.jpg"]}]', "repeats the id"),
        ("[]", "lists no products"),
        ('["front.jpg"]', "entry 0 must be a JSON object"),
        ('[{"images": ["x.jpg"]}]', 'entry 0 has no "id"'),
        ('[{"id": "a", "images": ["x.jpg"]}, {"id": null, "images": ["y.jpg"]}]', 'entry 1 has no "id"'),
        ('[{"id": 7, "images": ["x.jpg"]}]', "entry 0: Product id 7"),
    ],
)
def test_batch_bad_manifest_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    manifest = tmp_path / "sets.json"
    manifest.write_text(content)

    code = cli.main(["batch", str(manifest), "--out", str(tmp_path / "out")])

    assert code == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_bad_entry_fields_fail_own_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a manifest whose entries all have usable ids but malformed other fields
    entries = {
        "no-images": ({"id": "no-images"}, 'Field "images" is missing'),
        "empty": ({"id": "empty", "images": []}, "1 to 4 photo paths"),
        "not-list": ({"id": "not-list", "images": "front.jpg"}, "received 'front.jpg'"),
        "number": ({"id": "number", "images": [3]}, "entry at index 0 must be a non-empty path string"),
        "blank": ({"id": "blank", "images": ["front.jpg", " "]}, "entry at index 1 must be a non-empty path string"),
        "category": ({"id": "category", "images": ["front.jpg"], "category": 5}, '"category" must be a string'),
        "typo": ({"id": "typo", "images": ["front.jpg"], "categroy": "top"}, "Unknown field 'categroy'"),
    }
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([entry for entry, _ in entries.values()]))
    out = tmp_path / "out"

    # WHEN the batch runs
    code = cli.main(["batch", str(manifest), "--out", str(out)])

    # THEN each entry failed on its own with an error.json naming its problem
    assert code == 1
    for set_id, (_, fragment) in entries.items():
        error = json.loads((out / set_id / "error.json").read_text())["error"]
        assert error["code"] == "invalid_request", set_id
        assert fragment in error["message"], set_id
    assert json.loads((out / "blank" / "error.json").read_text())["error"]["image_index"] == 1
    assert json.loads((out / "number" / "error.json").read_text())["error"]["image_index"] == 0
    assert json.loads((out / "typo" / "error.json").read_text())["error"]["image_index"] is None
    assert f"{len(entries)} of {len(entries)} sets failed" in capsys.readouterr().err


def test_batch_unknown_category_fails_set(tmp_path: Path) -> None:
    shutil.copy(SAMPLES_DIR / "front.jpg", tmp_path / "front.jpg")
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "a", "images": ["front.jpg"], "category": "unknown"}]))

    code = cli.main(["batch", str(manifest), "--out", str(tmp_path / "out")])

    assert code == 1
    error = json.loads((tmp_path / "out" / "a" / "error.json").read_text())["error"]
    assert error["code"] == "unknown_category"
    assert "'unknown'" in error["message"]


@pytest.mark.parametrize("command", ["segment", "batch"])
@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan", "half"])
def test_threshold_out_of_range_rejected_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, threshold: str
) -> None:
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "a", "images": [str(SAMPLES_DIR / "front.jpg")]}]))
    source = str(SAMPLES_DIR / "front.jpg") if command == "segment" else str(manifest)

    code = cli.main([command, source, "--out", str(tmp_path / "out"), "--threshold", threshold])

    assert code == 2
    err = capsys.readouterr().err
    assert "between 0 and 1" in err
    assert threshold in err
    assert not (tmp_path / "out").exists()


def test_segment_no_hint_category_name_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(SAMPLES_DIR / "front.jpg"), "--out", str(tmp_path / "out"), "--category", "unknown"])

    assert code == 2
    listed = capsys.readouterr().err.split("expected one of", 1)[1]
    assert "unknown" not in listed
    assert all(name in listed for name in ACCEPTED_CATEGORIES)


@pytest.mark.parametrize("command", ["segment", "batch", "invoke"])
def test_out_existing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    out = tmp_path / "notes.md"
    out.write_text("keep me\n")
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "a", "images": [str(SAMPLES_DIR / "front.jpg")]}]))
    source = {
        "segment": str(SAMPLES_DIR / "front.jpg"),
        "batch": str(manifest),
        "invoke": str(EVENTS_DIR / "direct.json"),
    }[command]

    code = cli.main([command, source, "--out", str(out)])

    assert code == 2
    assert f"--out {out} is an existing file" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"


def test_segment_undecodable_photo_names_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")

    code = cli.main(["segment", str(SAMPLES_DIR / "front.jpg"), str(broken), "--out", str(tmp_path / "out")])

    err = capsys.readouterr().err
    assert code == 2
    assert str(broken) in err
    assert "JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF" in err
    assert "object at 0x" not in err


def test_batch_help_describes_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["batch", "--help"])

    help_text = capsys.readouterr().out
    assert code == 0
    for fragment in ('"id"', '"images"', '"category"', "relative to the manifest's folder", "error.json"):
        assert fragment in help_text
    assert all(name in help_text for name in ACCEPTED_CATEGORIES)


def test_invoke_prints_handler_response(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", str(EVENTS_DIR / "direct.json")])

    captured = capsys.readouterr()
    response: dict[str, Any] = json.loads(captured.out)
    assert code == 0
    assert response["product_id"] == "sample-direct"
    assert len(response["images"]) == 4


def test_invoke_out_saves_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", str(EVENTS_DIR / "direct.json"), "--out", str(tmp_path / "demo")])

    saved = json.loads((tmp_path / "demo" / "result.json").read_text())
    assert code == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "demo" / "result.json")
    for index, name in enumerate(["packshot.png", "front.jpg", "back.jpg", "detail.jpg"]):
        image = saved["images"][index]
        assert image["mask"] == {"path": f"mask-{index}.png"}
        assert image["cutout"] == {"path": f"cutout-{index}.png"}
        with Image.open(tmp_path / "demo" / f"mask-{index}.png") as mask:
            assert mask.size == sample_size(name)
            assert mask.mode == "L"
        with Image.open(tmp_path / "demo" / f"cutout-{index}.png") as cutout:
            assert cutout.size == sample_size(name)
            assert cutout.mode == "RGBA"


def test_invoke_legacy_png_saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", str(EVENTS_DIR / "api-predict-legacy.json"), "--out", str(tmp_path / "legacy")])

    saved = tmp_path / "legacy" / "response.png"
    assert code == 0
    assert capsys.readouterr().out.strip() == str(saved)
    with Image.open(saved) as grid:
        assert grid.format == "PNG"
        assert grid.mode == "RGBA"


def test_invoke_s3_notification_error_exit_1(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(build_events.s3_notification_event("incoming/absent/manifest.json")))

    code = cli.main(["invoke", str(event)])

    reply = json.loads(capsys.readouterr().out)
    assert reply["manifests"][0]["error"]["code"] == "image_not_found"
    assert code == 1


def test_invoke_s3_temporary_failure_exit_1(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN S3 that rejects every write, so the manifest's results cannot be stored
    def reject_put(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "PutObject")

    storage.s3_client().meta.events.register("before-parameter-build.s3.PutObject", reject_put)

    # WHEN the upload notification is invoked
    code = cli.main(["invoke", str(EVENTS_DIR / "s3-manifest.json")])

    # THEN the failure is reported on stderr with exit 1
    assert code == 1
    assert "Lambda would retry the event" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["notification", "batch"])
def test_invoke_s3_failed_reply_saved_as_error_json(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    if kind == "notification":
        reply_event: dict[str, Any] = build_events.s3_notification_event("incoming/absent/manifest.json")
    else:
        reply_event = load_event("s3-batch.json")
        reply_event["tasks"][0]["s3Key"] = "incoming/absent/manifest.json"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(reply_event))

    code = cli.main(["invoke", str(event), "--out", str(tmp_path / "out")])

    assert code == 1
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "error.json")
    assert not (tmp_path / "out" / "result.json").exists()


def test_invoke_s3_temporary_failure_replaces_result_json(s3: Any, tmp_path: Path) -> None:
    # GIVEN a successful invoke into a folder, then S3 that rejects every write
    out = tmp_path / "out"
    assert cli.main(["invoke", str(EVENTS_DIR / "s3-manifest.json"), "--out", str(out)]) == 0

    def reject_put(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "injected"}}, "PutObject")

    storage.s3_client().meta.events.register("before-parameter-build.s3.PutObject", reject_put)

    # WHEN the same event is invoked again
    code = cli.main(["invoke", str(EVENTS_DIR / "s3-manifest.json"), "--out", str(out)])

    # THEN the earlier result.json is gone and error.json explains the failure
    assert code == 1
    assert not (out / "result.json").exists()
    assert json.loads((out / "error.json").read_text())["error"]["code"] == "temporary_failure"


def test_invoke_s3_batch_failed_task_exit_1(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch_event = load_event("s3-batch.json")
    batch_event["tasks"][0]["s3Key"] = "incoming/absent/manifest.json"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(batch_event))

    code = cli.main(["invoke", str(event)])

    reply = json.loads(capsys.readouterr().out)
    assert reply["results"][0]["resultCode"] == "PermanentFailure"
    assert code == 1


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        ({"manifests": [{"manifest": "s3://b/k", "product_id": "p"}], "ignored": 0}, False),
        ({"manifests": [{"manifest": "s3://b/k", "product_id": "p"}, {"manifest": "s3://b/j", "error": {}}]}, True),
        ({"invocationSchemaVersion": "1.0", "results": [{"taskId": "t0", "resultCode": "Succeeded"}]}, False),
        ({"invocationSchemaVersion": "1.0", "results": [{"taskId": "t0", "resultCode": "TemporaryFailure"}]}, True),
        ({"invocationSchemaVersion": "1.0", "results": []}, True),
        ({"statusCode": 200, "body": "{}"}, False),
        ({"statusCode": 413, "body": "{}"}, True),
    ],
)
def test_invoke_failed_reply_shapes(result: dict[str, Any], failed: bool) -> None:
    event = {"invocationSchemaVersion": "1.0", "tasks": [{"taskId": "t0"}]}

    assert cli.invoke_failed(event, result) is failed


def test_invoke_error_response_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"images": []}))

    code = cli.main(["invoke", str(event)])

    assert code == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["code"] == "invalid_request"
    assert "the function reported a failure" in captured.err


def test_invoke_error_saved_as_error_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"images": [], "category": "widget"}))
    out = tmp_path / "out"

    code = cli.main(["invoke", str(event), "--out", str(out)])

    assert code == 1
    assert json.loads((out / "error.json").read_text())["error"]["code"] == "invalid_request"
    assert not (out / "result.json").exists()
    assert str(out / "error.json") in capsys.readouterr().err


def test_invoke_closed_stdout_quiet() -> None:
    # GIVEN a reader that closes the pipe before the CLI writes the response
    command = [sys.executable, "-m", "handler.cli", "--log-level", "ERROR", "invoke", str(EVENTS_DIR / "direct.json")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        errors_text = process.stderr.read().decode()
        code = process.wait(timeout=120)

    # THEN the CLI stops with exit code 1 and no traceback
    assert code == 1
    assert "Traceback" not in errors_text
    assert "BrokenPipeError" not in errors_text


def test_invoke_missing_event_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", str(tmp_path / "absent.json")])

    assert code == 2
    assert "absent.json not found" in capsys.readouterr().err


def test_segment_input_in_out_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a photo inside the output folder whose name is that of an output file
    photo = tmp_path / "response.jpg"
    shutil.copy(SAMPLES_DIR / "front.jpg", photo)
    original = photo.read_bytes()

    code = cli.main(["segment", str(photo), "--out", str(tmp_path)])

    # THEN the run stops before writing anything and the photo is intact
    assert code == 2
    assert "would replace it" in capsys.readouterr().err
    assert photo.read_bytes() == original
    assert sorted(path.name for path in tmp_path.iterdir()) == ["response.jpg"]


def test_batch_input_in_out_fails_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "risky").mkdir(parents=True)
    shutil.copy(SAMPLES_DIR / "front.jpg", out / "risky" / "mask-0.png")
    original = (out / "risky" / "mask-0.png").read_bytes()
    manifest = tmp_path / "sets.json"
    manifest.write_text(
        json.dumps([{"id": "risky", "images": ["out/risky/mask-0.png"]}, {"id": "fine", "images": [str(SAMPLES_DIR / "detail.jpg")]}])
    )

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    assert code == 1
    assert "set risky failed" in capsys.readouterr().err
    assert sorted(path.name for path in (out / "risky").iterdir()) == ["mask-0.png"]
    assert (out / "risky" / "mask-0.png").read_bytes() == original
    assert (out / "fine" / "result.json").is_file()


def test_batch_unwritable_output_fails_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an earlier folder named like an output file, where the first set's mask goes
    out = tmp_path / "out"
    (out / "first" / "mask-0.png").mkdir(parents=True)
    manifest = tmp_path / "sets.json"
    detail = str(SAMPLES_DIR / "detail.jpg")
    manifest.write_text(json.dumps([{"id": "first", "images": [detail]}, {"id": "second", "images": [detail]}]))

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    # THEN the first set fails with a message and an error.json, and the second set still runs
    assert code == 1
    assert "cannot write" in capsys.readouterr().err
    error = json.loads((out / "first" / "error.json").read_text())["error"]
    assert "mask-0.png" in error["message"]
    assert error["code"] == "output_write_failed"
    assert (out / "second" / "result.json").is_file()


def test_segment_unwritable_output_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out" / "result.json").mkdir(parents=True)

    code = cli.main(["segment", str(SAMPLES_DIR / "detail.jpg"), "--out", str(tmp_path / "out")])

    assert code == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_segment_device_file_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", "/dev/zero", "--out", str(tmp_path / "out")])

    assert code == 2
    assert "/dev/zero is not a regular file" in capsys.readouterr().err


def test_segment_oversized_file_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "big.jpg"
    shutil.copy(SAMPLES_DIR / "detail.jpg", photo)
    monkeypatch.setattr(cli, "MAX_LOCAL_FILE_BYTES", photo.stat().st_size - 1)

    code = cli.main(["segment", str(photo), "--out", str(tmp_path / "out")])

    assert code == 2
    assert f"at most {photo.stat().st_size - 1} bytes are accepted" in capsys.readouterr().err


def test_batch_other_set_input_kept(tmp_path: Path) -> None:
    # GIVEN a photo where set a writes its first mask, read by set b
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    photo = out / "a" / "mask-0.png"
    shutil.copy(SAMPLES_DIR / "front.jpg", photo)
    original = photo.read_bytes()
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "a", "images": [str(SAMPLES_DIR / "detail.jpg")]}, {"id": "b", "images": [str(photo)]}]))

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    # THEN set a fails without touching the photo, and set b segments the photo itself
    assert code == 1
    assert photo.read_bytes() == original
    assert (out / "b" / "result.json").is_file()


def test_batch_invalid_entry_input_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    photo = out / "x" / "Mask-0.png"
    shutil.copy(SAMPLES_DIR / "front.jpg", photo)
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "x", "images": [str(photo)], "categry": "top"}]))

    code = cli.main(["batch", str(manifest), "--out", str(out)])

    assert code == 1
    assert sorted(path.name for path in (out / "x").iterdir()) == ["Mask-0.png"]


def test_invoke_reads_event_from_pipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an event written into a named pipe by another thread, as with `invoke /dev/stdin`
    import threading

    pipe = tmp_path / "event.pipe"
    os.mkfifo(pipe)
    event = json.dumps(load_event("api-http-json.json")).encode()
    writer = threading.Thread(target=lambda: pipe.write_bytes(event))
    writer.start()

    code = cli.main(["invoke", str(pipe)])
    writer.join()

    assert code == 0
    assert json.loads(capsys.readouterr().out)["statusCode"] == 200


def test_segment_folder_as_photo_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(SAMPLES_DIR), "--out", str(tmp_path / "out")])

    assert code == 2
    assert f"{SAMPLES_DIR} is not a regular file" in capsys.readouterr().err


def test_batch_folder_as_photo_fails_own_set(tmp_path: Path) -> None:
    # GIVEN a manifest whose first set names a folder as its photo
    (tmp_path / "p1").mkdir()
    manifest = tmp_path / "sets.json"
    manifest.write_text(json.dumps([{"id": "folder", "images": ["p1"]}, {"id": "good", "images": [str(SAMPLES_DIR / "front.jpg")]}]))

    code = cli.main(["batch", str(manifest), "--out", str(tmp_path / "out")])

    # THEN only that set fails, and the next one still runs
    assert code == 1
    assert "is not a regular file" in json.loads((tmp_path / "out" / "folder" / "error.json").read_text())["error"]["message"]
    assert (tmp_path / "out" / "good" / "result.json").is_file()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests JSON arrays or objects too deeply"),
        ("[" + "1" * 5000 + "]", "contains a number with more than"),
        ("[", "is not valid JSON"),
    ],
)
def test_invoke_unparsable_event_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    event = tmp_path / "event.json"
    event.write_text(content)

    code = cli.main(["invoke", str(event)])

    assert code == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_invoke_event_encodings(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str) -> None:
    # Windows PowerShell 5 writes UTF-16 with a byte order mark by default.
    event = tmp_path / "event.json"
    event.write_bytes(json.dumps(load_event("api-http-json.json")).encode(encoding))

    code = cli.main(["invoke", str(event)])

    assert code == 0
    assert json.loads(capsys.readouterr().out)["statusCode"] == 200


def test_batch_piped_manifest_paths_from_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a manifest with a relative photo path, written into a named pipe in another folder,
    # run from the photo's parent folder
    import threading

    (tmp_path / "p1").mkdir()
    shutil.copy(SAMPLES_DIR / "front.jpg", tmp_path / "p1" / "front.jpg")
    (tmp_path / "pipes").mkdir()
    pipe = tmp_path / "pipes" / "sets.pipe"
    os.mkfifo(pipe)
    manifest = json.dumps([{"id": "piped", "images": ["p1/front.jpg"]}]).encode()
    writer = threading.Thread(target=lambda: pipe.write_bytes(manifest))
    writer.start()
    monkeypatch.chdir(tmp_path)

    code = cli.main(["batch", str(pipe), "--out", str(tmp_path / "out")])
    writer.join()

    assert code == 0
    assert (tmp_path / "out" / "piped" / "result.json").is_file()
