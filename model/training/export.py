"""Export a SetSegNet checkpoint to fp32 ONNX and check it against PyTorch.

    python -m model.training.export --checkpoint runs/v1/last.pt --out runs/v1/fashion-seg.fp32.onnx

The export passes only when every output of onnxruntime is within ATOL of
PyTorch on synthesized validation sets; otherwise it exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model.training.net import ProbabilityModel, SetSegNet
from model.training.synth import MAX_VIEWS, load_label_categories, load_photos, split_ids, synthesize_set

logger = logging.getLogger("export")

MODEL_NAME = "fashion-seg"
OPSET = 17
ATOL = 1e-3
"""Largest accepted absolute difference between ONNX and PyTorch probabilities.

Float rounding alone reaches a few 1e-4: the encoder's S/16 features (values
up to about 50) differ by up to 3e-4 between the two runtimes, and the prior's
best-match maps pass such differences on. An export bug is expected to differ by
1e-2 or more (an estimate, not measured).
"""
CATEGORIES_PATH = Path(__file__).resolve().parents[2] / "handler" / "data" / "categories.json"


def model_metadata(size: int, version: str, *, flip_average: bool = False) -> dict[str, str]:
    """Metadata stored in the ONNX file and read by the segmenter at load time."""
    names = [entry["name"] for entry in json.loads(CATEGORIES_PATH.read_text())["categories"]]
    return {
        "name": MODEL_NAME,
        "version": version,
        "input_size": str(size),
        "max_views": str(MAX_VIEWS),
        "normalization": "rgb / 127.5 - 1",
        "pad_value": "255",
        "categories": json.dumps(names),
        "flip_average": "true" if flip_average else "false",
    }


def export_onnx(net: SetSegNet, size: int, path: Path, metadata: dict[str, str]) -> None:
    """Trace the network with a sigmoid head and write an ONNX file with dynamic batch.

    The graph averages with the mirrored views when metadata["flip_average"] is "true".
    """
    model = ProbabilityModel(net, flip_average=metadata.get("flip_average") == "true").eval()
    example = (torch.zeros(1, MAX_VIEWS, 3, size, size), torch.ones(1, MAX_VIEWS), torch.zeros(1, dtype=torch.int64))
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=["images", "valid", "category"],
        output_names=["probs"],
        dynamic_axes={"images": {0: "batch"}, "valid": {0: "batch"}, "category": {0: "batch"}, "probs": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def parity_inputs(dataset_dir: Path, size: int, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Synthesize validation sets as ONNX feeds, with 1 to 4 views and hints on and off."""
    _, validation_ids = split_ids(dataset_dir)
    photos = load_photos(dataset_dir, validation_ids[:count])
    label_categories = load_label_categories(dataset_dir)
    rng = np.random.default_rng(seed)
    feeds = []
    for index, photo in enumerate(photos):
        product = synthesize_set(photo, label_categories, size, rng)
        if product is None:
            continue
        feeds.append(
            {
                "images": (product.images.transpose(0, 3, 1, 2)[None].astype(np.float32) / 127.5 - 1.0),
                "valid": product.valid[None].astype(np.float32),
                "category": np.array([product.category if index % 2 else 0], np.int64),
            }
        )
    return feeds


def check_parity(net: SetSegNet, path: Path, feeds: list[dict[str, np.ndarray]], *, flip_average: bool = False) -> float:
    """Compare onnxruntime with PyTorch on each feed.

    Returns:
        the largest absolute difference over all feeds.
    Raises:
        RuntimeError: a difference exceeds ATOL.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = ProbabilityModel(net, flip_average=flip_average).eval()
    worst = 0.0
    for feed in feeds:
        with torch.no_grad():
            expected = model(*(torch.from_numpy(feed[k]) for k in ("images", "valid", "category"))).numpy()
        (actual,) = session.run(["probs"], feed)
        if actual.shape != expected.shape:
            raise RuntimeError(f"output 'probs' has shape {actual.shape}, PyTorch gives {expected.shape}")
        worst = max(worst, float(np.abs(actual - expected).max()))
    if worst > ATOL:
        raise RuntimeError(f"output 'probs' differs from PyTorch by {worst:.2e}, above atol {ATOL:.0e}")
    return worst


def load_checkpoint(path: Path) -> tuple[SetSegNet, dict]:
    """Rebuild the network from a checkpoint written by train.py."""
    checkpoint = torch.load(path, map_location="cpu")
    settings = checkpoint["settings"]
    net = SetSegNet(settings["width"], prior=settings.get("prior", False), fine_prior=settings.get("fine_prior", False))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval(), checkpoint["settings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="last.pt written by train.py")
    parser.add_argument("--out", type=Path, required=True, help="fp32 ONNX file to write")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--version", default="1.0.0", help="model version stored in the metadata")
    parser.add_argument("--size", type=int, default=None, help="input side to export at (default: the checkpoint's --size)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=False, help="average with the mirrored views")
    parser.add_argument("--choice", type=Path, default=None, help="sizes.json of choose_size; sets --size and --flip-average")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    net, settings = load_checkpoint(args.checkpoint)
    if args.choice is not None:
        if args.size is not None or args.flip_average:
            parser.error("--choice sets the side and the flip average; leave out --size and --flip-average")
        choice = json.loads(args.choice.read_text())
        if choice["step"] != settings["step"]:
            parser.error(f"{args.choice} measured a checkpoint at step {choice['step']}, not this one at step {settings['step']}")
        args.size, args.flip_average = choice["chosen"]["size"], choice["chosen"]["flip_average"]
    size = args.size or settings["size"]
    if size % 16:
        parser.error(f"--size {size} is not divisible by 16")
    export_onnx(net, size, args.out, model_metadata(size, args.version, flip_average=args.flip_average))
    try:
        worst = check_parity(net, args.out, parity_inputs(args.dataset, size, 16, seed=1), flip_average=args.flip_average)
    except RuntimeError as err:
        logger.error("export rejected: %s", err)
        sys.exit(1)
    logger.info("wrote %s; max abs difference to PyTorch %.2e (atol %.0e)", args.out, worst, ATOL)


if __name__ == "__main__":
    main()
