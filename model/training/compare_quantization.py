"""Compare int8 quantization choices by IoU against the truth and by latency on one thread.

    python -m model.training.compare_quantization --fp32 model/fashion-seg.fp32.onnx

Each variant is a static quantization of the fp32 model by onnxruntime, calibrated on the same
synthesized training sets. It is scored on synthesized validation sets by the mean IoU of the
present views at threshold 0.5, in the letterboxed frame. It is timed on a 4-view set with one
intra-op thread. Variant files go to a temporary folder; nothing in model/ changes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from model.training.quantize import FeedReader, activation_matmuls, depthwise_convs, mean_iou, outer_convs, validation_sets
from model.training.synth import split_ids


def score(path: Path, pairs: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> tuple[float, float]:
    """Return (mean IoU over present views, median ms of one 4-view set on one thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    full = next(feed for feed, _ in pairs if feed["valid"].sum() == 4)
    for _ in range(3):
        session.run(["probs"], full)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        session.run(["probs"], full)
        times.append((time.perf_counter() - started) * 1000)
    return mean_iou(path, pairs), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, default=Path("model/fashion-seg.fp32.onnx"), help="fp32 ONNX model")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--calibration-sets", type=int, default=96, help="synthesized training sets for calibration")
    parser.add_argument("--validation-sets", type=int, default=96, help="synthesized validation sets for scoring")
    args = parser.parse_args()

    size = int({p.key: p.value for p in onnx.load(str(args.fp32)).metadata_props}["input_size"])
    train_ids, _ = split_ids(args.dataset)
    calibration = FeedReaderFactory(args.dataset, train_ids, size, args.calibration_sets)
    pairs = validation_sets(args.dataset, size, args.validation_sets, seed=3)

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(args.fp32), str(prepared), skip_symbolic_shape=True)
        proto = onnx.load(str(prepared))
        attention = activation_matmuls(proto)
        depthwise = depthwise_convs(proto)
        outer = outer_convs(proto)
        variants = {
            "conv + all matmul, per-channel": {"op_types_to_quantize": ["Conv", "MatMul"], "per_channel": True},
            "conv only, per-channel": {"op_types_to_quantize": ["Conv"], "per_channel": True},
            "conv + weight matmul, per-tensor": {
                "op_types_to_quantize": ["Conv", "MatMul"],
                "per_channel": False,
                "nodes_to_exclude": attention,
            },
            "conv + weight matmul, per-channel": {
                "op_types_to_quantize": ["Conv", "MatMul"],
                "per_channel": True,
                "nodes_to_exclude": attention,
            },
            "as above, depthwise conv fp32": {
                "op_types_to_quantize": ["Conv", "MatMul"],
                "per_channel": True,
                "nodes_to_exclude": attention + depthwise,
            },
            "as above, stem and head conv fp32 (shipped)": {
                "op_types_to_quantize": ["Conv", "MatMul"],
                "per_channel": True,
                "nodes_to_exclude": attention + depthwise + outer,
            },
        }
        fp32_iou, fp32_ms = score(args.fp32, pairs)
        print(f"{'variant':<46}{'IoU':>8}{'vs fp32':>9}{'ms/set':>9}{'MB':>7}")
        print(f"{'fp32':<46}{fp32_iou:>8.4f}{0.0:>+9.4f}{fp32_ms:>9.1f}{args.fp32.stat().st_size / 1e6:>7.2f}")
        for name, settings in variants.items():
            output = Path(folder) / "variant.onnx"
            quantize_static(
                str(prepared),
                str(output),
                calibration.reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                **settings,
            )
            iou, ms = score(output, pairs)
            print(f"{name:<46}{iou:>8.4f}{iou - fp32_iou:>+9.4f}{ms:>9.1f}{output.stat().st_size / 1e6:>7.2f}")


class FeedReaderFactory:
    """Synthesizes the calibration feeds once and hands out a fresh reader per variant."""

    def __init__(self, dataset_dir: Path, ids: list[str], size: int, count: int) -> None:
        from model.training.quantize import synthesized_feeds

        self.feeds = synthesized_feeds(dataset_dir, ids, size, count, seed=2)

    def reader(self) -> FeedReader:
        return FeedReader(self.feeds)


if __name__ == "__main__":
    main()
