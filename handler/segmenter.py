"""Run the multi-view segmentation model with onnxruntime (the only module importing it).

The ONNX file carries its contract in metadata_props (name, version, input_size,
max_views, normalization, pad_value, categories). ``Segmenter`` checks that
contract when it loads the file, so a mismatched model fails at cold start and
not on the first request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from handler.categories import CATEGORY_NAMES
from handler.letterbox import PAD_VALUE

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "model" / "fashion-seg.int8.onnx"
MODEL_PATH_ENV = "MODEL_PATH"
THREADS_ENV = "ORT_THREADS"
MAX_THREADS = 256
"""Largest accepted ORT_THREADS. Lambda gives a function at most 6 vCPUs. With 100,000 threads,
creating the onnxruntime session did not finish within 2 minutes on a 2-core machine."""

REQUIRED_METADATA = ("name", "version", "input_size", "max_views", "normalization", "pad_value", "categories")
NORMALIZATION = "rgb / 127.5 - 1"
"""The only input normalization this module implements, as the metadata spells it."""

INPUT_TYPES = {"images": "tensor(float)", "valid": "tensor(float)", "category": "tensor(int64)"}
OUTPUT_NAME = "probs"


class ModelContractError(ValueError):
    """The ONNX file's metadata, inputs or outputs differ from what this module feeds it."""


class InvalidThreadCountError(ValueError):
    """The ORT_THREADS environment variable is not an integer from 1 to MAX_THREADS."""


class InferenceError(RuntimeError):
    """onnxruntime failed while running the model."""


class Segmenter:
    """A loaded model plus its contract; ``predict`` maps letterboxed squares to probabilities.

    Attributes:
        name: model name from the metadata.
        version: model version from the metadata.
        input_size: side S of the square input, in pixels.
        max_views: views per set, V_max.
        categories: category names indexed by id.
        sha256: hex digest of the ONNX file.
    """

    def __init__(self, session: ort.InferenceSession, *, sha256: str) -> None:
        """Wrap a session after checking its metadata and signature.

        Raises:
            ModelContractError: a metadata key is missing or invalid, or the inputs
                or outputs differ in name, type or shape from the contract.
        """
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        self._session = session
        self.sha256 = sha256
        self.name, self.version = metadata.get("name", ""), metadata.get("version", "")
        self.input_size, self.max_views, self.categories = _parse_metadata(metadata)
        _check_signature(session, self.input_size, self.max_views)

    @classmethod
    def from_path(cls, path: str | Path, *, threads: int | None = None) -> Segmenter:
        """Load an ONNX file on the CPU.

        Args:
            path: the .onnx file.
            threads: intra-op threads; None uses os.cpu_count().
        Raises:
            FileNotFoundError: path does not exist.
            ModelContractError: as for the constructor.
        """
        model_bytes = Path(path).read_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads would otherwise spin and take CPU from the numpy steps after inference.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        return cls(session, sha256=hashlib.sha256(model_bytes).hexdigest())

    def predict(self, squares: NDArray[np.uint8], *, category_id: int = 0) -> NDArray[np.float32]:
        """Segment the product shown in a set of letterboxed views.

        Args:
            squares: (V, S, S, 3) uint8 RGB views of one product, letterboxed with
                white padding; 1 <= V <= max_views. Missing views are filled with
                white squares marked invalid.
            category_id: index into ``categories``; 0 means no hint.
        Returns:
            (V, S, S) float32 product probability per pixel, 0-1, in the square frame.
        Raises:
            ValueError: squares has the wrong shape, dtype or view count, or
                category_id is out of range.
            ModelContractError: the model returns an output of the wrong shape.
            InferenceError: onnxruntime raised while running the model.
        """
        size, views = self.input_size, squares.shape[0] if squares.ndim == 4 else 0
        if squares.ndim != 4 or squares.shape[1:] != (size, size, 3) or squares.dtype != np.uint8:
            raise ValueError(f"expected (V, {size}, {size}, 3) uint8 squares, got {squares.shape} {squares.dtype}")
        if not 1 <= views <= self.max_views:
            raise ValueError(f"expected 1 to {self.max_views} views, got {views}")
        if not 0 <= category_id < len(self.categories):
            raise ValueError(f"expected category_id in 0..{len(self.categories) - 1}, got {category_id}")

        images = np.ones((1, self.max_views, 3, size, size), dtype=np.float32)  # white after normalization
        images[0, :views] = squares.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
        valid = np.zeros((1, self.max_views), dtype=np.float32)
        valid[0, :views] = 1.0
        category = np.array([category_id], dtype=np.int64)
        try:
            (probs,) = self._session.run([OUTPUT_NAME], {"images": images, "valid": valid, "category": category})
        # onnxruntime's run errors (Fail, RuntimeException, InvalidArgument and others) derive
        # directly from Exception, so no narrower class covers them all.
        except Exception as err:
            raise InferenceError(f"onnxruntime failed to run the model: {err}") from err

        if probs.shape != (1, self.max_views, size, size):
            raise ModelContractError(
                f"expected output {OUTPUT_NAME!r} of shape (1, {self.max_views}, {size}, {size}), got {probs.shape}"
            )
        return np.clip(probs[0, :views], 0.0, 1.0).astype(np.float32, copy=False)


def _parse_metadata(metadata: dict[str, str]) -> tuple[int, int, tuple[str, ...]]:
    """Check the contract keys; returns (input_size, max_views, categories)."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelContractError(
            f"model metadata lacks {', '.join(missing)}; expected keys {', '.join(REQUIRED_METADATA)}"
        )
    try:
        input_size, max_views = int(metadata["input_size"]), int(metadata["max_views"])
        categories = tuple(json.loads(metadata["categories"]))
    except (ValueError, TypeError) as err:
        raise ModelContractError(
            f"model metadata has an unreadable input_size, max_views or categories: {err}"
        ) from err
    if input_size < 1 or max_views < 1:
        raise ModelContractError(
            f"model metadata input_size={input_size}, max_views={max_views}; both must be positive"
        )
    if metadata["normalization"] != NORMALIZATION:
        raise ModelContractError(
            f"model expects normalization {metadata['normalization']!r}; this handler implements {NORMALIZATION!r}"
        )
    if metadata["pad_value"] != str(PAD_VALUE):
        raise ModelContractError(
            f"model expects pad_value {metadata['pad_value']!r}; the letterbox pads with {PAD_VALUE}"
        )
    if categories != CATEGORY_NAMES:
        raise ModelContractError(
            f"model categories {list(categories)} differ from handler/data/categories.json {list(CATEGORY_NAMES)}"
        )
    return input_size, max_views, categories


def _check_signature(session: ort.InferenceSession, size: int, max_views: int) -> None:
    """Compare the session's inputs and output with the contract; raise on any difference."""
    inputs = {node.name: node for node in session.get_inputs()}
    if set(inputs) != set(INPUT_TYPES):
        raise ModelContractError(f"model inputs are {sorted(inputs)}; expected {sorted(INPUT_TYPES)}")
    for name, expected_type in INPUT_TYPES.items():
        if inputs[name].type != expected_type:
            raise ModelContractError(f"model input {name!r} has type {inputs[name].type}; expected {expected_type}")
    expected_images = [max_views, 3, size, size]
    if list(inputs["images"].shape[1:]) != expected_images:
        raise ModelContractError(
            f"model input 'images' has shape {inputs['images'].shape}; expected [N, {max_views}, 3, {size}, {size}]"
        )

    outputs = [node.name for node in session.get_outputs()]
    if OUTPUT_NAME not in outputs:
        raise ModelContractError(f"model outputs are {outputs}; expected {OUTPUT_NAME!r}")


@functools.lru_cache(maxsize=1)
def get_segmenter() -> Segmenter:
    """Return the process-wide Segmenter, loading it on the first call.

    The model path comes from the MODEL_PATH environment variable, by default
    model/fashion-seg.int8.onnx in the repository; ORT_THREADS sets the
    intra-op thread count, by default os.cpu_count().

    Raises:
        InvalidThreadCountError: ORT_THREADS is not an integer from 1 to MAX_THREADS.
        FileNotFoundError, ModelContractError: as for Segmenter.from_path.
    """
    path = Path(os.environ.get(MODEL_PATH_ENV) or DEFAULT_MODEL_PATH)
    threads_text = os.environ.get(THREADS_ENV, "").strip()
    threads = None
    if threads_text:
        # str.isdigit() also accepts digits that int() rejects, such as "²", hence isascii().
        is_number = threads_text.isascii() and threads_text.isdigit() and len(threads_text) <= len(str(MAX_THREADS))
        if not is_number or not 1 <= int(threads_text) <= MAX_THREADS:
            quoted = threads_text if len(threads_text) <= 20 else threads_text[:20] + "..."
            raise InvalidThreadCountError(
                f"{THREADS_ENV}={quoted!r} is invalid; set it to an integer from 1 to {MAX_THREADS} or unset it"
            )
        threads = int(threads_text)
    return Segmenter.from_path(path, threads=threads)
