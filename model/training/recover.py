"""Rebuild a training checkpoint from an exported fp32 ONNX file.

    python -m model.training.recover --onnx model/fashion-seg.fp32.onnx --out runs/recovered/last.pt

Checkpoints stay out of git, so the committed fp32 model is the only copy of the
shipped weights that a new checkout has. The exporter folded every batch norm
into the convolution before it, so each rebuilt ConvBnRelu keeps the folded
kernel and gets a batch norm that only adds the folded bias (scale 1, running
mean 0, running variance 1 - eps). The checkpoint records this as
settings["folded_batch_norm"]; train.py then keeps every batch norm in
evaluation mode, since batch statistics would undo the folding.

The rebuilt network gives the ONNX file's probabilities within the export's
ATOL; main() checks that on synthesized validation sets and exits non-zero
otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from model.training.export import ATOL, check_parity, parity_inputs
from model.training.net import SetSegNet

logger = logging.getLogger("recover")


def module_path(node_name: str) -> str:
    """Turn an exported node name into the SetSegNet module path it came from.

    The exporter names nodes by module scope, one segment per level, with the
    full dotted name of Sequential children: "/net/down2/down2.0/depthwise/depthwise.0/Conv"
    belongs to module "down2.0.depthwise.0".
    """
    segments = node_name.strip("/").split("/")[1:-1]
    parts: list[str] = []
    for segment in segments:
        if parts and segment.startswith(parts[-1] + "."):
            parts[-1] = segment
        else:
            parts.append(segment)
    return ".".join(parts)


def onnx_weights(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Map each weighted node's module path to its (weight, bias) initializers.

    Returns:
        {"<module>.weight": array, "<module>.bias": array} for Conv nodes, MatMul
        nodes (weights transposed to nn.Linear's (out, in)) and the bias Add that
        follows each MatMul; plus every initializer already named after a module
        ("net.category.weight", layer norms and the like), without the "net." prefix.
    """
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in proto.graph.initializer}
    weights = {name.removeprefix("net."): value for name, value in initializers.items() if name.startswith("net.")}
    for node in proto.graph.node:
        known = [name for name in node.input if name in initializers]
        if not known or node.op_type not in ("Conv", "MatMul"):
            continue
        path = module_path(node.name)
        if node.op_type == "Conv":
            weights[f"{path}.weight"] = initializers[known[0]]
            if len(known) > 1:
                weights[f"{path}.bias"] = initializers[known[1]]
        else:
            weights[f"{path}.weight"] = initializers[known[0]].T
    return weights


def load_folded(net: SetSegNet, weights: dict[str, np.ndarray]) -> None:
    """Copy ONNX weights into net, turning each batch norm into a bias-only step.

    Raises:
        ValueError: a parameter of net has no weight in the file, or a shape differs.
    """
    state = net.state_dict()
    filled: dict[str, torch.Tensor] = {}
    batch_norms = {name for name, module in net.named_modules() if isinstance(module, nn.BatchNorm2d)}
    for bn in batch_norms:
        conv = bn.rsplit(".", 1)[0] + ".0"
        eps = net.get_submodule(bn).eps
        bias = weights.pop(f"{conv}.bias", None)
        if bias is None:
            raise ValueError(f"no folded bias for {conv} in the ONNX file; expected a file written by model.training.export")
        channels = state[f"{bn}.weight"].shape[0]
        filled |= {
            f"{bn}.weight": torch.ones(channels),
            f"{bn}.bias": torch.from_numpy(bias.copy()),
            f"{bn}.running_mean": torch.zeros(channels),
            f"{bn}.running_var": torch.full((channels,), 1.0 - eps),
            f"{bn}.num_batches_tracked": torch.tensor(0),
        }
    for name, value in weights.items():
        if name in state and name not in filled:
            filled[name] = torch.from_numpy(np.array(value, copy=True))
    missing = sorted(set(state) - set(filled))
    if missing:
        raise ValueError(f"the ONNX file has no weights for {missing}")
    for name, tensor in filled.items():
        if tuple(tensor.shape) != tuple(state[name].shape):
            raise ValueError(f"{name}: ONNX shape {tuple(tensor.shape)}, network shape {tuple(state[name].shape)}")
    net.load_state_dict(filled)


def recover(path: Path) -> tuple[SetSegNet, dict]:
    """Rebuild SetSegNet from an fp32 ONNX file.

    Returns:
        the network in evaluation mode, and checkpoint settings as train.py writes them
        (width, prior, size, sizes, step 0, folded_batch_norm True, flip_average).
    """
    proto = onnx.load(str(path))
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    weights = onnx_weights(proto)
    width = int(weights["stem.0.weight"].shape[0])
    prior = "prior.coarse.weight" in weights
    fine_prior = "fine_prior.coarse.weight" in weights
    net = SetSegNet(width, prior=prior, fine_prior=fine_prior)
    load_folded(net, weights)
    size = int(metadata["input_size"])
    settings = {
        "size": size,
        "sizes": [size],
        "width": width,
        "prior": prior,
        "fine_prior": fine_prior,
        "step": 0,
        "seed": None,
        "init": str(path),
        "folded_batch_norm": True,
        "flip_average": metadata.get("flip_average") == "true",
        "recovered_version": metadata.get("version"),
    }
    return net.eval(), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=Path("model/fashion-seg.fp32.onnx"), help="fp32 ONNX file from export.py")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (last.pt layout of train.py)")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder, for the parity check")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    net, settings = recover(args.onnx)
    try:
        feeds = parity_inputs(args.dataset, settings["size"], 16, seed=1)
        worst = check_parity(net, args.onnx, feeds, flip_average=settings["flip_average"])
    except RuntimeError as err:
        logger.error("recovery failed: %s", err)
        sys.exit(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "settings": settings}, args.out)
    logger.info(
        "wrote %s from %s (width %d, prior %s); max abs difference to the ONNX file %.2e (atol %.0e)",
        *(args.out, args.onnx, settings["width"], settings["prior"], worst, ATOL),
    )


if __name__ == "__main__":
    main()
