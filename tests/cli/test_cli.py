"""The fashion-seg console script: segment, batch and invoke."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from handler import cli
from tests.conftest import EVENTS_DIR, SAMPLES_DIR


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


def test_segment_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["segment", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "out")])

    assert code == 2
    assert "nope.jpg not found" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a"}', "expected a JSON list"),
        ('[{"id": "../x", "images": []}]', "Product id"),
        ('[{"id": "a", "images": ["x.jpg"]}, {"id": "a", "images": ["y.jpg"]}]', "repeats the id"),
        ('[{"id": "a"}]', '"images" list'),
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


def test_invoke_error_response_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"images": []}))

    code = cli.main(["invoke", str(event)])

    assert code == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "invalid_request"


def test_invoke_missing_event_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", str(tmp_path / "absent.json")])

    assert code == 2
    assert "absent.json not found" in capsys.readouterr().err
