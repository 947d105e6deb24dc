"""Command line interface ``fashion-seg``: segment local photos, run a batch, or invoke the handler.

Subcommands:
    segment IMG [IMG ...] --out DIR    one product's 1-4 photos -> DIR/mask-K.png, cutout-K.png, result.json
    batch MANIFEST.json --out DIR      many products -> DIR/<id>/..., error.json for a failed set
    invoke EVENT.json                  run lambda_handler in-process on an event file, print its response

Standard output carries the command's result (the invoke response); logs and progress go to
standard error. Exit codes: 0 success, 1 a set or the invoked function failed, 2 invalid input.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from tqdm import tqdm

from handler import app, errors, payload, response

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2


class CliError(Exception):
    """An input problem reported as one line on stderr with exit code 2."""


@dataclass(frozen=True)
class LocalContext:
    """The Lambda context fields that Powertools' Logger reads, for in-process invokes."""

    function_name: str = "fashion-seg-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fashion-seg-local"
    aws_request_id: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    args = build_parser().parse_args(argv)
    # The handler logs JSON lines to stdout for CloudWatch; here stdout carries the result.
    log_handler = cast(logging.StreamHandler, app.logger.registered_handler)  # Powertools' default handler
    previous_stream, previous_level = log_handler.setStream(sys.stderr), app.logger.log_level
    app.logger.setLevel(args.log_level)
    try:
        return int(args.run(args))
    except CliError as err:
        print(f"fashion-seg: error: {err}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except errors.ApiError as err:
        print(f"fashion-seg: error: {err.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT if err.status_code < 500 else EXIT_FAILED
    finally:
        app.logger.setLevel(previous_level)
        if previous_stream is not None:
            log_handler.setStream(previous_stream)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashion-seg", description="Segment the product in fashion photos.")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default: WARNING)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    segment = commands.add_parser("segment", help="segment 1 to 4 photos of one product")
    segment.add_argument("images", nargs="+", type=Path, metavar="IMG", help="photo files (JPEG, PNG, WebP)")
    segment.add_argument("--out", required=True, type=Path, help="output folder, created if missing")
    add_options(segment)
    segment.set_defaults(run=run_segment)

    batch = commands.add_parser("batch", help="segment every product listed in a manifest file")
    batch.add_argument("manifest", type=Path, help='JSON list of {"id": str, "images": [path, ...], "category": str}')
    batch.add_argument("--out", required=True, type=Path, help="output folder; each product goes to OUT/<id>/")
    add_options(batch, category=False)
    batch.set_defaults(run=run_batch)

    invoke = commands.add_parser("invoke", help="run the Lambda handler on an event file and print the response")
    invoke.add_argument("event", type=Path, help="event JSON file, for example events/direct.json")
    invoke.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to save the inline masks and cutouts of a JSON response as PNG files, plus result.json",
    )
    invoke.set_defaults(run=run_invoke)
    return parser


def add_options(parser: argparse.ArgumentParser, *, category: bool = True) -> None:
    parser.add_argument(
        "--threshold", type=float, default=payload.DEFAULT_THRESHOLD, help="mask probability cut, 0-1 (default: 0.5)"
    )
    if category:
        parser.add_argument("--category", default=None, help="category hint, a name or alias such as top or sneakers")


def run_segment(args: argparse.Namespace) -> int:
    """Segment one product's photos into args.out."""
    segment = build_segment(args.images, threshold=args.threshold, category=args.category, product_id=args.out.name)
    write_outputs(args.out, segment)
    print(args.out / "result.json")
    return EXIT_OK


def run_batch(args: argparse.Namespace) -> int:
    """Segment every set of a manifest; a failed set gets error.json and the run goes on."""
    sets = read_batch_manifest(args.manifest)
    base = args.manifest.resolve().parent
    failed = []
    for entry in tqdm(sets, desc="segmenting", unit="set", file=sys.stderr):
        folder = args.out / entry["id"]
        try:
            paths = [resolve_path(base, name) for name in entry["images"]]
            segment = build_segment(
                paths, threshold=args.threshold, category=entry.get("category"), product_id=entry["id"]
            )
            write_outputs(folder, segment)
        except (errors.ApiError, CliError) as err:
            failed.append(entry["id"])
            api_error = err if isinstance(err, errors.ApiError) else errors.InvalidRequestError(str(err))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.json").write_text(json.dumps(response.error_document(api_error), indent=2) + "\n")
            tqdm.write(f"fashion-seg: set {entry['id']} failed: {api_error.message}", file=sys.stderr)
    if failed:
        print(
            f"fashion-seg: {len(failed)} of {len(sets)} sets failed: {', '.join(failed)}; see their error.json",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def run_invoke(args: argparse.Namespace) -> int:
    """Invoke lambda_handler on an event file; exit 1 when the function reported an error."""
    event = read_json(args.event, description="event file")
    # LocalContext has every attribute the handler and its logger read.
    context = cast(LambdaContext, LocalContext(aws_request_id=f"local-{uuid.uuid4()}"))
    result = app.lambda_handler(event, context)
    if args.out is not None and isinstance(result, dict):
        print(save_invoke_response(args.out, result))
    else:
        print(json.dumps(result, indent=2))
    status = result.get("statusCode", 200) if isinstance(result, dict) else 200
    return EXIT_FAILED if status >= 400 or (isinstance(result, dict) and "error" in result) else EXIT_OK


def save_invoke_response(folder: Path, result: dict[str, Any]) -> Path:
    """Save the inline PNGs of a handler response as files and the document as result.json.

    Each ``{"png_base64": ...}`` location becomes ``{"path": "mask-K.png"}`` in the saved document.
    A response with an API Gateway envelope is unwrapped from its JSON body first.

    Returns:
        Path of the written result.json.
    """
    document = json.loads(result["body"]) if isinstance(result.get("body"), str) else result
    folder.mkdir(parents=True, exist_ok=True)
    for image in document.get("images", []):
        for kind in ("mask", "cutout"):
            location = image.get(kind)
            if isinstance(location, dict) and "png_base64" in location:
                name = f"{kind}-{image['index']}.png"
                (folder / name).write_bytes(base64.b64decode(location["png_base64"]))
                image[kind] = {"path": name}
    path = folder / "result.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def build_segment(
    paths: Sequence[Path], *, threshold: float, category: str | None, product_id: str
) -> tuple[payload.SegmentRequest, app.Segmentation]:
    """Read, validate and segment local photos; raises ApiError or CliError on bad input."""
    payload.check_image_count(len(paths))
    sources = tuple(
        payload.ImageSource(index=index, data=read_file(path, description=f"image {index}"))
        for index, path in enumerate(paths)
    )
    segment = payload.SegmentRequest(
        images=sources,
        threshold=payload.parse_threshold(threshold),
        category=payload.parse_category(category),
        product_id=product_id,
    )
    return segment, app.segment_request(segment)


def write_outputs(folder: Path, segmented: tuple[payload.SegmentRequest, app.Segmentation]) -> None:
    """Write mask-K.png, cutout-K.png and, last, result.json into folder."""
    segment, segmentation = segmented
    folder.mkdir(parents=True, exist_ok=True)
    locations = []
    for index, pngs in enumerate(response.encode_views(segmentation.result)):
        (folder / f"mask-{index}.png").write_bytes(pngs.mask)
        (folder / f"cutout-{index}.png").write_bytes(pngs.cutout)
        locations.append((response.file_location(f"mask-{index}.png"), response.file_location(f"cutout-{index}.png")))
    document = response.result_document(
        segmentation.result, product_id=segment.product_id, locations=locations, timings_ms=segmentation.timings_ms
    )
    (folder / "result.json").write_text(json.dumps(document, indent=2) + "\n")


def read_batch_manifest(path: Path) -> list[dict[str, Any]]:
    """Load and validate a batch manifest: a list of objects with a unique safe "id" and "images"."""
    sets = read_json(path, description="manifest")
    if not isinstance(sets, list):
        raise CliError(f'{path}: expected a JSON list of {{"id", "images"}} objects, got {type(sets).__name__}')
    seen: set[str] = set()
    for position, entry in enumerate(sets):
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list):
            raise CliError(f'{path}: entry {position} must be an object with an "images" list')
        try:
            payload.parse_product_id(entry.get("id"))
        except errors.InvalidRequestError as err:
            raise CliError(f"{path}: entry {position}: {err.message}") from err
        if entry["id"] in seen:
            raise CliError(
                f"{path}: entry {position} repeats the id {entry['id']!r}; ids name output folders and must be unique"
            )
        seen.add(entry["id"])
    return sets


def resolve_path(base: Path, name: object) -> Path:
    """Resolve a manifest image path against the manifest's folder; absolute paths stay as they are."""
    if not isinstance(name, str) or not name:
        raise CliError(f"image path {name!r} must be a non-empty string")
    return base / name


def read_file(path: Path, *, description: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise CliError(f"{description} {path} not found") from err
    except OSError as err:
        raise CliError(f"cannot read {description} {path}: {err.strerror}") from err


def read_json(path: Path, *, description: str) -> Any:
    try:
        return json.loads(read_file(path, description=description))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{description} {path} is not valid JSON: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
