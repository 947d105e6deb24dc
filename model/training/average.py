"""Blend the weights of two checkpoints of the same network into a third.

    python -m model.training.average --first runs/stage6/last.pt --second runs/stage7/last.pt \
        --weight 0.75 --out runs/stage7-blend/last.pt

When the second checkpoint was fine-tuned from the first, the straight line between their
weights keeps the network working, and a point on it can keep most of what the fine-tune
added while losing less of what it traded away. Model 1.6.0 is such a blend of training
stages 6 and 7; the model card gives the measured trade.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def blend_states(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], weight: float) -> dict[str, torch.Tensor]:
    """Return (1 - weight) * first + weight * second for every floating-point tensor.

    Integer tensors (batch-norm step counters) are taken from second. Both state dicts
    must have the same keys and shapes.
    """
    if first.keys() != second.keys():
        raise ValueError(f"the checkpoints contain different tensors: {sorted(first.keys() ^ second.keys())}")
    blended = {}
    for name, value in second.items():
        if first[name].shape != value.shape:
            raise ValueError(
                f"tensor {name} has shape {tuple(first[name].shape)} in the first checkpoint, {tuple(value.shape)} in the second"
            )
        blended[name] = (1.0 - weight) * first[name] + weight * value if value.is_floating_point() else value.clone()
    return blended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", type=Path, required=True, help="checkpoint at weight 0")
    parser.add_argument("--second", type=Path, required=True, help="checkpoint at weight 1, whose settings are kept")
    parser.add_argument("--weight", type=float, required=True, help="share of the second checkpoint, 0-1")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    args = parser.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        parser.error(f"--weight must be between 0 and 1, not {args.weight}")

    first = torch.load(args.first, map_location="cpu")
    second = torch.load(args.second, map_location="cpu")
    for key in ("width", "prior", "fine_prior", "folded_batch_norm"):
        if first["settings"].get(key) != second["settings"].get(key):
            parser.error(f"the checkpoints differ in {key}: {first['settings'].get(key)} and {second['settings'].get(key)}")
    settings = dict(second["settings"], blend={"first": str(args.first), "second": str(args.second), "weight": args.weight})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": blend_states(first["state_dict"], second["state_dict"], args.weight), "settings": settings}, args.out)
    print(f"wrote {args.out}: {1 - args.weight:.2f} x {args.first} + {args.weight:.2f} x {args.second}")


if __name__ == "__main__":
    main()
