"""Choose the model input side by measurement: quality and speed of one checkpoint at several sides.

Run from the repository root, in the training environment, after training with
`--sizes` (the network has no positional embedding, so the same weights run at
any side divisible by 16):

    python -m model.training.choose_size --checkpoint runs/v2/last.pt --sizes 128,160,192,224,256

For each side, plain and with the mirrored-views average (export
--flip-average), it exports the fp32 network to ONNX, segments the full set of
4 of every validation photo (refined to each photo's own resolution, as the
handler does), and times one 4-view set on one pinned core. The views are
rendered with a seed other than `make eval`'s, but they come from the same
validation photos, so the table of `make eval` for the chosen variant is
slightly optimistic. Speed is timed on the fp32 file: quantizing every
variant would take longer than the whole measurement. `make bench` times the
shipped int8 file.

Rule: among the variants within TIME_BUDGET_MS, keep those whose set-of-4 IoU
is within TIE_MARGIN of the best, and choose the fastest of them. When no
variant is within the budget, the rule applies to all of them and the printout
states that none is within it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.training.evaluate import EVAL_VIEWS, THRESHOLD, OnnxSetModel, build_cases, evaluate_model, load_refiner
from model.training.export import export_onnx, load_checkpoint, model_metadata
from model.training.synth import MAX_VIEWS

logger = logging.getLogger("choose_size")

TIME_BUDGET_MS = 100.0
"""Latency budget, in milliseconds, for one warm 4-view set on one core."""
TIE_MARGIN = 0.005
"""Set-of-4 IoU differences below this are treated as noise."""


def time_set(path: Path, size: int, repeats: int) -> float:
    """Return the median milliseconds of one 4-view set on one onnxruntime thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "images": rng.uniform(-1, 1, (1, MAX_VIEWS, 3, size, size)).astype(np.float32),
        "valid": np.ones((1, MAX_VIEWS), np.float32),
        "category": np.zeros(1, np.int64),
    }
    session.run(["probs"], feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(["probs"], feed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def choose(rows: list[dict]) -> dict:
    """Apply the module's rule to measured rows (keys: size, flip_average, set_iou, ms); return the chosen row."""
    affordable = [row for row in rows if row["ms"] <= TIME_BUDGET_MS] or rows
    best = max(row["set_iou"] for row in affordable)
    return min((row for row in affordable if row["set_iou"] >= best - TIE_MARGIN), key=lambda row: row["ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (last.pt)")
    parser.add_argument("--sizes", type=str, default="128,160,192,224,256", help="comma-separated input sides")
    parser.add_argument("--out", type=Path, default=Path("out/choose-size"), help="folder for sizes.json")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N validation photos")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the quality pass")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per side")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sizes = [int(side) for side in args.sizes.split(",")]

    net, settings = load_checkpoint(args.checkpoint)
    cases = build_cases(args.dataset, args.limit, args.seed)
    refiner = load_refiner(THRESHOLD)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for size in sizes:
            for flip_average in (False, True):
                paths.append(Path(folder) / f"side-{size}-flip-{flip_average}.onnx")
                with torch.no_grad():
                    export_onnx(net, size, paths[-1], model_metadata(size, "choose-size", flip_average=flip_average))
                scores, _ = evaluate_model(OnnxSetModel(paths[-1], args.threads), cases, refiner, full=False)
                rows.append(
                    {"size": size, "flip_average": flip_average}
                    | {"set_iou": scores.mean("scenario/full"), "boundary_f": scores.mean("scenario/full", boundary=True)}
                    | {name: scores.mean(f"full/{name}") for name in EVAL_VIEWS}
                )
                logger.info("side %d, flip average %s: set-of-4 IoU %.3f", size, flip_average, rows[-1]["set_iou"])
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        torch.set_num_threads(1)
        for row, path in zip(rows, paths, strict=True):
            row["ms"] = time_set(path, row["size"], args.repeats)

    chosen = choose(rows)
    print(f"\nCheckpoint {args.checkpoint} (step {settings['step']} of its run, trained at {settings.get('sizes', [settings['size']])})")
    print(f"{len(cases)} validation photos, full set of 4, fp32, refined to full resolution; time: one 4-view set, one core")
    print(f"{'side':>6}{'flip':>6}" + "".join(f"{name:>10}" for name in EVAL_VIEWS) + f"{'set of 4':>10}{'BF@3px':>10}{'ms/set':>10}")
    for row in rows:
        cells = "".join(f"{row[name]:10.3f}" for name in [*EVAL_VIEWS, "set_iou", "boundary_f"])
        print(f"{row['size']:6d}{'yes' if row['flip_average'] else 'no':>6}{cells}{row['ms']:10.1f}")
    within = f"under {TIME_BUDGET_MS:.0f} ms" if chosen["ms"] <= TIME_BUDGET_MS else f"none is under {TIME_BUDGET_MS:.0f} ms"
    print(
        f"chosen: side {chosen['size']} px, flip average {'on' if chosen['flip_average'] else 'off'}"
        f" (fastest within {TIE_MARGIN} IoU of the best set of 4, {within})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    measured = {"checkpoint": str(args.checkpoint), "step": settings["step"]}
    (args.out / "sizes.json").write_text(json.dumps(measured | {"rows": rows, "chosen": chosen}, indent=2) + "\n")


if __name__ == "__main__":
    main()
