"""Quantize the fp32 ONNX model to static int8 (QDQ) and check it against fp32.

    python -m model.training.quantize --fp32 model/fashion-seg.fp32.onnx --out model/fashion-seg.int8.onnx

Calibration uses synthesized training sets. Dense convolutions and the matrix
products with a weight (linear layers) are quantized, with per-channel
weights. Depthwise convolutions, the activation-by-activation products (the
attention's, and the product prior's cell-to-cell similarities), layer norm,
softmax and resize stay fp32. compare_quantization.py
measured the choices on the trained model (onnxruntime 1.32, x86-64, one
thread): quantizing the attention products was slower than fp32, and keeping
depthwise convolutions fp32 lost the least IoU and ran fastest. The first
convolution (RGB in) and the last (logit out) stay fp32 too: quantizing them
cost 0.039 IoU for the model trained at several input sides. The int8 model
passes when its mean IoU against the truth on synthesized validation sets is at
most MAX_IOU_LOSS below the fp32 model's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from model.training.synth import load_label_categories, load_photos, split_ids, synthesize_set

logger = logging.getLogger("quantize")

MAX_IOU_LOSS = 0.01
"""Largest accepted drop of mean IoU against the truth, int8 versus fp32 (threshold 0.5)."""


def synthesized_feeds(dataset_dir: Path, ids: list[str], size: int, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Build count ONNX feeds from synthesized sets of the given photos."""
    photos = load_photos(dataset_dir, ids)
    label_categories = load_label_categories(dataset_dir)
    rng = np.random.default_rng(seed)
    feeds: list[dict[str, np.ndarray]] = []
    while len(feeds) < count:
        product = synthesize_set(photos[rng.integers(len(photos))], label_categories, size, rng)
        if product is None:
            continue
        feeds.append(
            {
                "images": product.images.transpose(0, 3, 1, 2)[None].astype(np.float32) / 127.5 - 1.0,
                "valid": product.valid[None].astype(np.float32),
                "category": np.array([product.category if rng.random() < 0.5 else 0], np.int64),
            }
        )
    return feeds


class FeedReader(CalibrationDataReader):
    """Hands prepared feeds to onnxruntime's calibrator one at a time."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def validation_sets(dataset_dir: Path, size: int, count: int, seed: int) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Build (feed, (4, S, S) bool truth) pairs from synthesized validation sets, without category hints."""
    _, validation_ids = split_ids(dataset_dir)
    photos = load_photos(dataset_dir, validation_ids)
    label_categories = load_label_categories(dataset_dir)
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < count:
        product = synthesize_set(photos[rng.integers(len(photos))], label_categories, size, rng)
        if product is None:
            continue
        feed = {
            "images": product.images.transpose(0, 3, 1, 2)[None].astype(np.float32) / 127.5 - 1.0,
            "valid": product.valid[None].astype(np.float32),
            "category": np.zeros(1, np.int64),
        }
        pairs.append((feed, product.masks))
    return pairs


def mean_iou(path: Path, pairs: list[tuple[dict[str, np.ndarray], np.ndarray]], *, threads: int = 1) -> float:
    """Mean IoU against the truth over the present views of the sets, at threshold 0.5."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    scores = []
    for feed, truth in pairs:
        masks = session.run(["probs"], feed)[0][0] >= 0.5
        for view in np.flatnonzero(feed["valid"][0]):
            union = np.logical_or(masks[view], truth[view]).sum()
            scores.append(1.0 if union == 0 else np.logical_and(masks[view], truth[view]).sum() / union)
    return float(np.mean(scores))


def activation_matmuls(proto: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes whose inputs are both activations (no initializer)."""
    initializers = {tensor.name for tensor in proto.graph.initializer}
    return [node.name for node in proto.graph.node if node.op_type == "MatMul" and not any(name in initializers for name in node.input)]


def depthwise_convs(proto: onnx.ModelProto) -> list[str]:
    """Names of grouped (depthwise) Conv nodes."""
    return [
        node.name
        for node in proto.graph.node
        if node.op_type == "Conv" and any(attribute.name == "group" and attribute.i > 1 for attribute in node.attribute)
    ]


def outer_convs(proto: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes with 3 input channels or 1 output channel.

    These are the stem (RGB in), the logit head and, in a network with the
    priors, each prior's first convolution (its three maps in) and the
    FinePrior's score convolution (one map out).
    """
    shapes = {tensor.name: tuple(tensor.dims) for tensor in proto.graph.initializer}
    names = []
    for node in proto.graph.node:
        weight = shapes.get(node.input[1], ()) if node.op_type == "Conv" and len(node.input) > 1 else ()
        if len(weight) == 4 and (weight[1] == 3 or weight[0] == 1):
            names.append(node.name)
    return names


def copy_metadata(source: Path, target: Path) -> None:
    """Copy metadata_props from source to target, since quantization may drop them."""
    metadata = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    proto = onnx.load(str(target))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(target))


def write_model_card(int8_path: Path) -> Path:
    """Write the JSON card beside the model: metadata, quantization settings and sha256."""
    proto = onnx.load(str(int8_path))
    card = {entry.key: entry.value for entry in proto.metadata_props}
    card["categories"] = json.loads(card["categories"])
    card.update(
        {
            "file": int8_path.name,
            "sha256": hashlib.sha256(int8_path.read_bytes()).hexdigest(),
            "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "quantization": (
                "static int8 QDQ: dense Conv and weight MatMul with per-channel int8 weights, uint8 activations,"
                " MinMax calibration; the RGB stem Conv, the logit head Conv, the priors' first Convs and one-channel score Convs, depthwise Conv,"
                " activation-by-activation"
                " MatMul (attention, prior similarities),"
                " LayerNorm, Softmax and Resize stay fp32"
            ),
            "inputs": {"images": "float32 [N, 4, 3, S, S]", "valid": "float32 [N, 4]", "category": "int64 [N]"},
            "outputs": {"probs": "float32 [N, 4, S, S], 0-1"},
        }
    )
    path = int8_path.with_suffix(".json")
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, required=True, help="fp32 ONNX from export.py")
    parser.add_argument("--out", type=Path, required=True, help="int8 ONNX file to write")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--calibration-sets", type=int, default=96, help="synthesized training sets for calibration")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    size = int({p.key: p.value for p in onnx.load(str(args.fp32)).metadata_props}["input_size"])
    train_ids, _ = split_ids(args.dataset)
    prepared = args.out.with_suffix(".prep.onnx")
    quant_pre_process(str(args.fp32), str(prepared), skip_symbolic_shape=True)
    proto = onnx.load(str(prepared))
    kept_fp32 = activation_matmuls(proto) + depthwise_convs(proto) + outer_convs(proto)
    candidate = args.out.with_suffix(".candidate.onnx")
    quantize_static(
        str(prepared),
        str(candidate),
        FeedReader(synthesized_feeds(args.dataset, train_ids, size, args.calibration_sets, seed=2)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        nodes_to_exclude=kept_fp32,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink()
    copy_metadata(args.fp32, candidate)

    pairs = validation_sets(args.dataset, size, 96, seed=3)
    fp32_iou, int8_iou = mean_iou(args.fp32, pairs), mean_iou(candidate, pairs)
    if fp32_iou - int8_iou > MAX_IOU_LOSS:
        candidate.unlink()
        logger.error(
            "int8 model rejected: IoU %.4f is %.4f below fp32 (%.4f); at most %.2f is accepted",
            int8_iou,
            fp32_iou - int8_iou,
            fp32_iou,
            MAX_IOU_LOSS,
        )
        sys.exit(1)
    candidate.replace(args.out)
    card = write_model_card(args.out)
    logger.info(
        "wrote %s (%d bytes) and %s; IoU on validation sets int8 %.4f, fp32 %.4f",
        args.out,
        args.out.stat().st_size,
        card,
        int8_iou,
        fp32_iou,
    )


if __name__ == "__main__":
    main()
