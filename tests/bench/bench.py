"""Benchmark the serving path on generated photos and print the figures.

    python tests/bench/bench.py [--threads 1] [--runs 7]

Run it pinned to one core (``taskset -c 0``) to match the Lambda budget. It prints
the cold model load, warm inference of a 4-view set, refinement of four
2000 x 3000 photos, the full segment_set on a 4-photo set, and the peak RSS. It
reads no dataset: every photo is drawn here from a fixed seed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from handler.consensus import color_consensus
from handler.letterbox import crop_placement, letterbox
from handler.pipeline import segment_set
from handler.refine import refine_mask
from handler.segmenter import DEFAULT_MODEL_PATH, Segmenter

SAMPLE_SIZES = [(3000, 2000), (2000, 3000), (2400, 2400), (1600, 1200)]
REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter so that imports and the model load count towards the cold start.
HANDLER_PROBE = """
import json, sys, time
started = time.perf_counter()
from handler import app
from handler.cli import LocalContext
imported = time.perf_counter()
event = json.load(open(sys.argv[1]))
timings = []
for run in range(int(sys.argv[2])):
    begin = time.perf_counter()
    result = app.lambda_handler(event, LocalContext(aws_request_id=f"bench-{run}"))
    timings.append((time.perf_counter() - begin) * 1000)
    assert "error" not in result, result
print(json.dumps({"import_ms": (imported - started) * 1000, "invocations_ms": timings}))
"""


def generated_photo(height: int, width: int, seed: int) -> NDArray[np.uint8]:
    """Noisy light background with a colored garment-like ellipse and a hole."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((width * 0.2, height * 0.1, width * 0.8, height * 0.9), fill=255)
    draw.ellipse((width * 0.45, height * 0.45, width * 0.55, height * 0.55), fill=0)
    product = np.asarray(canvas)[:, :, None] > 0
    background = rng.normal(228.0, 6.0, (height, width, 1))
    color = rng.uniform(30, 200, 3)
    photo = np.where(product, color + rng.normal(0.0, 8.0, (height, width, 1)), background)
    return np.clip(photo, 0, 255).astype(np.uint8)


def median_ms(action: Callable[[], object], runs: int) -> float:
    """Median wall time of action over runs calls, after one warm-up call."""
    return median_wall_and_cpu_ms(action, runs)[0]


def median_wall_and_cpu_ms(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of action over runs calls, after one warm-up call.

    CPU time leaves out the waits for a core that other processes hold, so it is the
    steadier figure on a shared machine.
    """
    action()
    wall_times, cpu_times = [], []
    for _ in range(runs):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        action()
        wall_times.append((time.perf_counter() - wall_started) * 1000.0)
        cpu_times.append((time.process_time() - cpu_started) * 1000.0)
    return statistics.median(wall_times), statistics.median(cpu_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure; the median is printed")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="ONNX model file")
    args = parser.parse_args()
    if args.threads < 1 or args.runs < 1:
        parser.error("--threads and --runs must be at least 1")

    started = time.perf_counter()
    segmenter = Segmenter.from_path(args.model, threads=args.threads)
    load_ms = (time.perf_counter() - started) * 1000.0

    photos = [generated_photo(height, width, seed) for seed, (height, width) in enumerate(SAMPLE_SIZES)]
    letterboxed = [letterbox(photo, segmenter.input_size) for photo in photos]
    squares = np.stack([square for square, _ in letterboxed])
    infer_ms = median_ms(lambda: segmenter.predict(squares), args.runs)
    set_probs = segmenter.predict(squares)
    placements = [placement for _, placement in letterboxed]
    consensus_ms = median_ms(lambda: color_consensus(squares, placements, set_probs), args.runs)

    tall = [generated_photo(3000, 2000, seed) for seed in range(4)]
    tall_boxes = [letterbox(photo, segmenter.input_size) for photo in tall]
    tall_probs = segmenter.predict(np.stack([square for square, _ in tall_boxes]))
    regions = [crop_placement(probs, placement) for probs, (_, placement) in zip(tall_probs, tall_boxes, strict=True)]
    refine_ms, refine_cpu_ms = median_wall_and_cpu_ms(
        lambda: [refine_mask(photo, region) for photo, region in zip(tall, regions, strict=True)], args.runs
    )

    set_runs = max(1, args.runs // 2)
    result = segment_set(photos, segmenter)
    total_ms = median_ms(lambda: segment_set(photos, segmenter), set_runs)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux

    print(f"model {segmenter.name} {segmenter.version} sha256 {segmenter.sha256[:12]}, threads {args.threads}")
    print(f"model load (cold):                      {load_ms:8.1f} ms")
    print(f"inference, 4-view set (median of {args.runs}):    {infer_ms:8.1f} ms")
    print(f"color consensus, 4-view set (median):   {consensus_ms:8.1f} ms")
    print(f"refine, four 2000x3000 photos (median): {refine_ms:8.1f} ms wall, {refine_cpu_ms:.1f} ms CPU")
    sizes = ", ".join(f"{w}x{h}" for h, w in SAMPLE_SIZES)
    print(f"segment_set, 4 photos ({sizes}) (median of {set_runs}): {total_ms:8.1f} ms")
    print("  first run by step: " + ", ".join(f"{key} {value:.1f} ms" for key, value in result.timings_ms.items()))
    print(f"peak RSS:                               {peak_mib:8.1f} MiB")
    print(f"model file: {args.model.stat().st_size / 1e6:.2f} MB")

    probe = measure_handler(REPO / "events" / "direct.json", args.runs, args.threads)
    warm = statistics.median(probe["invocations_ms"][1:]) if len(probe["invocations_ms"]) > 1 else float("nan")
    print("lambda_handler on events/direct.json (4 sample photos), fresh process:")
    print(f"  imports:                              {probe['import_ms']:8.1f} ms")
    print(f"  first invocation (loads the model):   {probe['invocations_ms'][0]:8.1f} ms")
    print(f"  warm invocation (median of {len(probe['invocations_ms']) - 1}):        {warm:8.1f} ms")

    peer_ms = time_peer(photos, args.runs, args.threads)
    if peer_ms is None:
        print("peer rembg u2netp: not installed (pip install -e '.[eval]')")
    else:
        print(f"peer rembg u2netp, 4 photos at 320 px (median of {args.runs}): {peer_ms:8.1f} ms")


def measure_handler(event: Path, runs: int, threads: int) -> dict:
    """Invoke lambda_handler runs + 1 times in a fresh interpreter; return its import and call times."""
    env = dict(os.environ, ORT_THREADS=str(threads), POWERTOOLS_LOG_LEVEL="ERROR")
    completed = subprocess.run(
        [sys.executable, "-c", HANDLER_PROBE, str(event), str(runs + 1)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def time_peer(photos: list[NDArray[np.uint8]], runs: int, threads: int) -> float | None:
    """Median time of rembg's u2netp over the photos, with rembg's preprocessing; None if not installed."""
    try:
        from model.training.evaluate import PeerModel

        peer = PeerModel(threads)
    except ImportError:
        return None
    return median_ms(lambda: [peer.predict(photo) for photo in photos], runs)


if __name__ == "__main__":
    main()
