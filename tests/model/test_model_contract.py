"""The committed ONNX model's contract, and the Segmenter's checks of that contract."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from handler import segmenter as segmenter_module
from handler.categories import CATEGORY_NAMES
from handler.segmenter import DEFAULT_MODEL_PATH, REQUIRED_METADATA, ModelContractError, Segmenter

MODEL_CARD_PATH = DEFAULT_MODEL_PATH.with_suffix(".json")


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(DEFAULT_MODEL_PATH), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def model() -> Segmenter:
    return Segmenter.from_path(DEFAULT_MODEL_PATH, threads=1)


@pytest.mark.model
def test_model_inputs_and_output_follow_contract(session: ort.InferenceSession) -> None:
    card = json.loads(MODEL_CARD_PATH.read_text())
    size, views = int(card["input_size"]), int(card["max_views"])
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name: node for node in session.get_outputs()}

    assert sorted(inputs) == ["category", "images", "valid"]
    assert inputs["images"].type == "tensor(float)"
    assert inputs["images"].shape[1:] == [views, 3, size, size]
    assert inputs["valid"].type == "tensor(float)"
    assert inputs["valid"].shape[1:] == [views]
    assert inputs["category"].type == "tensor(int64)"
    assert len(inputs["category"].shape) == 1
    assert list(outputs) == ["probs"]
    assert outputs["probs"].type == "tensor(float)"
    assert outputs["probs"].shape[1:] == [views, size, size]


@pytest.mark.model
def test_model_metadata_matches_model_card(session: ort.InferenceSession) -> None:
    metadata = session.get_modelmeta().custom_metadata_map
    card = json.loads(MODEL_CARD_PATH.read_text())

    for key in REQUIRED_METADATA:
        assert key in metadata, key
    for key in ("name", "version", "input_size", "max_views", "normalization", "pad_value"):
        assert metadata[key] == card[key], key
    assert json.loads(metadata["categories"]) == card["categories"]
    assert card["sha256"] == hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()


@pytest.mark.model
def test_model_categories_match_vocabulary(model: Segmenter) -> None:
    assert model.categories == CATEGORY_NAMES
    assert model.name == "fashion-seg"
    assert model.sha256 == hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()


@pytest.mark.model
def test_model_dynamic_batch_gives_probabilities(session: ort.InferenceSession, model: Segmenter) -> None:
    size, views = model.input_size, model.max_views
    rng = np.random.default_rng(0)
    feed = {
        "images": rng.uniform(-1.0, 1.0, (3, views, 3, size, size)).astype(np.float32),
        "valid": np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=np.float32)[:, :views],
        "category": np.array([0, 1, len(CATEGORY_NAMES) - 1], dtype=np.int64),
    }

    (probs,) = session.run(["probs"], feed)

    assert probs.shape == (3, views, size, size)
    assert probs.dtype == np.float32
    assert np.isfinite(probs).all()
    assert probs.min() >= 0.0
    assert probs.max() <= 1.0


def noise_feed(size: int, views: int) -> dict[str, np.ndarray]:
    """Build a feed of 3 sets of noise squares with 4, 1 and 2 present views and different hints."""
    rng = np.random.default_rng(5)
    return {
        "images": rng.uniform(-1.0, 1.0, (3, views, 3, size, size)).astype(np.float32),
        "valid": np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=np.float32)[:, :views],
        "category": np.array([0, 1, len(CATEGORY_NAMES) - 1], dtype=np.int64),
    }


@pytest.mark.model
def test_model_batch_rows_are_independent(session: ort.InferenceSession, model: Segmenter) -> None:
    feed = noise_feed(model.input_size, model.max_views)

    (together,) = session.run(["probs"], feed)

    for row in range(3):
        (alone,) = session.run(["probs"], {name: value[row : row + 1] for name, value in feed.items()})
        np.testing.assert_allclose(together[row], alone[0], atol=1e-5)


@pytest.mark.model
def test_model_mirrored_average_is_mirror_symmetric(session: ort.InferenceSession, model: Segmenter) -> None:
    if session.get_modelmeta().custom_metadata_map.get("flip_average") != "true":
        pytest.skip("the model does not average with the mirrored views")
    feed = noise_feed(model.input_size, model.max_views)
    mirrored = dict(feed, images=np.ascontiguousarray(feed["images"][..., ::-1]))

    (probs,) = session.run(["probs"], feed)
    (probs_of_mirrored,) = session.run(["probs"], mirrored)

    np.testing.assert_allclose(probs_of_mirrored[..., ::-1], probs, atol=1e-5)
    assert np.abs(probs - probs[..., ::-1]).max() > 0.01  # noise input: the map itself is not symmetric


@pytest.mark.model
@pytest.mark.parametrize("views", [1, 2, 3, 4])
def test_segmenter_predict_matches_hand_built_feed(session: ort.InferenceSession, model: Segmenter, views: int) -> None:
    size = model.input_size
    squares = np.random.default_rng(views).integers(0, 256, (views, size, size, 3), dtype=np.uint8)
    images = np.ones((1, model.max_views, 3, size, size), dtype=np.float32)
    images[0, :views] = np.moveaxis(squares, -1, 1).astype(np.float32) / 127.5 - 1.0
    valid = (np.arange(model.max_views) < views).astype(np.float32)[None]

    (expected,) = session.run(["probs"], {"images": images, "valid": valid, "category": np.array([2], np.int64)})
    probs = model.predict(squares, category_id=2)

    assert probs.shape == (views, size, size)
    assert probs.dtype == np.float32
    # The feed uses the segmenter's float32 arithmetic: on noise input, a one-ulp input
    # difference from float64 rounding moved int8 outputs by up to 0.01.
    np.testing.assert_allclose(probs, expected[0, :views], atol=3e-3)


@pytest.mark.model
@pytest.mark.parametrize(
    ("shape", "dtype", "pattern"),
    [
        # "S" stands for the model's input side, "S/2" for a wrong side.
        ((5, "S", "S", 3), np.uint8, "1 to 4 views"),
        ((0, "S", "S", 3), np.uint8, "1 to 4 views"),
        ((1, "S/2", "S/2", 3), np.uint8, "uint8 squares"),
        ((1, "S", "S", 3), np.float32, "uint8 squares"),
        (("S", "S", 3), np.uint8, "uint8 squares"),
    ],
)
def test_segmenter_predict_bad_squares_raise(model: Segmenter, shape: tuple[int | str, ...], dtype: type, pattern: str) -> None:
    sides = {"S": model.input_size, "S/2": model.input_size // 2}
    concrete = tuple(sides[d] if isinstance(d, str) else d for d in shape)

    with pytest.raises(ValueError, match=pattern):
        model.predict(np.zeros(concrete, dtype=dtype))


@pytest.mark.model
@pytest.mark.parametrize("category_id", [-1, len(CATEGORY_NAMES)])
def test_segmenter_predict_category_out_of_range_raises(model: Segmenter, category_id: int) -> None:
    squares = np.zeros((1, model.input_size, model.input_size, 3), dtype=np.uint8)

    with pytest.raises(ValueError, match="category_id"):
        model.predict(squares, category_id=category_id)


# Tiny stand-in models built with onnx.helper, to check the Segmenter's contract checks.
TINY_SIZE = 8
TINY_METADATA = {
    "name": "tiny",
    "version": "0.0.1",
    "input_size": str(TINY_SIZE),
    "max_views": "4",
    "normalization": "rgb / 127.5 - 1",
    "pad_value": "255",
    "categories": json.dumps(list(CATEGORY_NAMES)),
}


def write_tiny_model(path: Path, *, metadata: dict[str, str] | None = None, image_input: str = "images", output: str = "probs") -> Path:
    """Write a model whose probs are the sigmoid of the channel mean of its images."""
    images = helper.make_tensor_value_info(image_input, TensorProto.FLOAT, ["batch", 4, 3, TINY_SIZE, TINY_SIZE])
    valid = helper.make_tensor_value_info("valid", TensorProto.FLOAT, ["batch", 4])
    category = helper.make_tensor_value_info("category", TensorProto.INT64, ["batch"])
    probs = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 4, TINY_SIZE, TINY_SIZE])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    nodes = [
        helper.make_node("ReduceMean", [image_input, "axes"], ["mean"], keepdims=0),
        helper.make_node("Sigmoid", ["mean"], [output]),
    ]
    graph = helper.make_graph(nodes, "tiny", [images, valid, category], [probs], initializer=[axes])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    for key, value in (TINY_METADATA if metadata is None else metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def test_segmenter_tiny_model_loads_and_predicts(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx")
    squares = np.zeros((2, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    squares[1] = 255

    tiny = Segmenter.from_path(path, threads=1)
    probs = tiny.predict(squares)

    assert (tiny.name, tiny.version, tiny.input_size, tiny.max_views) == ("tiny", "0.0.1", TINY_SIZE, 4)
    assert tiny.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_allclose(probs[0], 1 / (1 + np.e), atol=1e-6)  # black: sigmoid(-1)
    np.testing.assert_allclose(probs[1], 1 / (1 + np.exp(-1)), atol=1e-6)  # white: sigmoid(1)


@pytest.mark.parametrize("missing", REQUIRED_METADATA)
def test_segmenter_missing_metadata_key_raises(tmp_path: Path, missing: str) -> None:
    metadata = {key: value for key, value in TINY_METADATA.items() if key != missing}
    path = write_tiny_model(tmp_path / "tiny.onnx", metadata=metadata)

    with pytest.raises(ModelContractError, match=f"lacks {missing}"):
        Segmenter.from_path(path)


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("input_size", "large", "unreadable"),
        ("max_views", "0", "must be positive"),
        ("normalization", "rgb / 255", "normalization"),
        ("pad_value", "0", "pad_value"),
        ("categories", json.dumps(["unknown", "top"]), "differ from"),
        ("categories", "not json", "unreadable"),
    ],
)
def test_segmenter_invalid_metadata_raises(tmp_path: Path, key: str, value: str, pattern: str) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx", metadata={**TINY_METADATA, key: value})

    with pytest.raises(ModelContractError, match=pattern):
        Segmenter.from_path(path)


def test_segmenter_wrong_input_name_raises(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx", image_input="pixels")

    with pytest.raises(ModelContractError, match="inputs are"):
        Segmenter.from_path(path)


def test_segmenter_wrong_output_name_raises(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx", output="masks")

    with pytest.raises(ModelContractError, match="'probs'"):
        Segmenter.from_path(path)


def test_segmenter_input_size_differs_from_graph_raises(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx", metadata={**TINY_METADATA, "input_size": "16"})

    with pytest.raises(ModelContractError, match="'images' has shape"):
        Segmenter.from_path(path)


def test_get_segmenter_reads_path_from_env_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tiny_model(tmp_path / "tiny.onnx")
    monkeypatch.setenv("MODEL_PATH", str(path))
    monkeypatch.setenv("ORT_THREADS", "1")
    segmenter_module.get_segmenter.cache_clear()
    try:
        first = segmenter_module.get_segmenter()
        second = segmenter_module.get_segmenter()
    finally:
        segmenter_module.get_segmenter.cache_clear()

    assert first is second
    assert first.name == "tiny"


@pytest.mark.parametrize("threads", ["zero", "0", "-2", "257", "100000", "99999999999999999999", "\u00b2"])
def test_get_segmenter_invalid_thread_count_raises(monkeypatch: pytest.MonkeyPatch, threads: str) -> None:
    monkeypatch.setenv("ORT_THREADS", threads)
    segmenter_module.get_segmenter.cache_clear()
    try:
        with pytest.raises(segmenter_module.InvalidThreadCountError, match="ORT_THREADS"):
            segmenter_module.get_segmenter()
    finally:
        segmenter_module.get_segmenter.cache_clear()
