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
import binascii
import json
import logging
import mimetypes
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from tqdm import tqdm

from handler import app, errors, payload, response, results
from handler.batch_manifest import BATCH_DESCRIPTION, ManifestError, check_entry_fields, check_manifest
from handler.categories import ACCEPTED_CATEGORIES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2

MAX_LOCAL_FILE_BYTES = 256 * 1024 * 1024
"""Largest local file the CLI reads. A 40 MP uncompressed 16-bit RGB TIFF (240 MB) fits; the pixel
limit of the service then applies as for any photo. S3 inputs are capped lower, at 30 MiB."""

OUTPUT_NAME = re.compile(r"result\.json|error\.json|(mask|cutout)-\d+\.png|response\.\w+")
"""Names of the files the CLI writes into an output folder; prepare_output_folder deletes only these."""



class CliError(Exception):
    """An input problem reported as one line on stderr with exit code 2.

    Attributes:
        image_index: index of the photo the problem is about, or None.
    """

    def __init__(self, message: str, *, image_index: int | None = None) -> None:
        super().__init__(message)
        self.image_index = image_index


class OutputWriteError(errors.ApiError):
    """An output file could not be written (a full disk, a folder in the way); exit code 1."""

    code = "output_write_failed"


class InputWouldBeReplacedError(CliError):
    """An input file lies in the output folder under the name of an output file."""


@dataclass(frozen=True)
class LocalContext:
    """The Lambda context fields that Powertools' Logger reads, for in-process invokes."""

    function_name: str = "fashion-seg-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fashion-seg-local"
    aws_request_id: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        # argparse exits after --help (0) and after printing a usage error (2).
        return stop.code if isinstance(stop.code, int) else EXIT_INVALID_INPUT
    # The handler logs JSON lines to stdout for CloudWatch; here stdout carries the result.
    log_handler = cast(logging.StreamHandler, app.logger.registered_handler)  # Powertools' default handler
    previous_stream, previous_level = log_handler.setStream(sys.stderr), app.logger.log_level
    app.logger.setLevel(args.log_level)
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader of stdout (head, less) closed the pipe. Point stdout at /dev/null so that
        # the interpreter's final flush does not print a second error, then stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
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
    segment.add_argument(
        "images", nargs="+", type=Path, metavar="IMG", help="photo files (JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF)"
    )
    segment.add_argument("--out", required=True, type=Path, help="output folder, created if missing")
    segment.add_argument(
        "--product-id",
        type=parse_product_id_option,
        default=None,
        help="product id written to result.json (default: the name of the --out folder, with every run of "
        "characters other than letters, digits, '.', '_' and '-' replaced by '-')",
    )
    add_options(segment)
    segment.set_defaults(run=run_segment)

    batch = commands.add_parser(
        "batch",
        help="segment every product listed in a manifest file",
        description=BATCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument(
        "manifest", type=Path, help='JSON list of {"id": str, "images": [path, ...], "category": str}; see above'
    )
    batch.add_argument("--out", required=True, type=Path, help="output folder; each product goes to OUT/<id>/")
    add_options(batch, category=False)
    batch.set_defaults(run=run_batch)

    invoke = commands.add_parser("invoke", help="run the Lambda handler on an event file; print the response, or save it with --out")
    invoke.add_argument("event", type=Path, help="event JSON file, for example events/direct.json")
    invoke.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder to save the response in: the inline masks and cutouts of a JSON response as PNG files "
        "plus result.json, or a non-JSON body (the /predict PNG) as response.png",
    )
    invoke.set_defaults(run=run_invoke)
    return parser


def add_options(parser: argparse.ArgumentParser, *, category: bool = True) -> None:
    parser.add_argument(
        "--threshold",
        type=parse_threshold_option,
        default=payload.DEFAULT_THRESHOLD,
        help=f"mask probability cut, 0-1 (default: {payload.DEFAULT_THRESHOLD})",
    )
    if category:
        parser.add_argument(
            "--category",
            type=parse_category_option,
            default=None,
            help=f"category hint: {', '.join(ACCEPTED_CATEGORIES)}, or an alias such as sneakers",
        )


def parse_threshold_option(text: str) -> float:
    """Parse --threshold, so that a value outside [0, 1] stops the command before any work."""
    try:
        return payload.parse_threshold(text)
    except errors.ApiError as err:
        raise argparse.ArgumentTypeError(err.message) from err


def parse_product_id_option(text: str) -> str:
    """Check --product-id with the same rule as the API's product ids."""
    try:
        return payload.parse_product_id(text)
    except errors.ApiError as err:
        raise argparse.ArgumentTypeError(err.message) from err


def parse_category_option(text: str) -> str | None:
    """Resolve --category to a vocabulary name, so that an unknown value stops the command early."""
    try:
        return payload.parse_category(text)
    except errors.ApiError as err:
        raise argparse.ArgumentTypeError(err.message) from err


def run_segment(args: argparse.Namespace) -> int:
    """Segment one product's photos into args.out."""
    check_out_folder(args.out)
    check_inputs_kept(args.images, args.out)
    # resolve() turns "." or ".." into the folder's own name.
    product_id = args.product_id or folder_product_id(args.out.resolve().name)
    segment = build_segment(args.images, threshold=args.threshold, category=args.category, product_id=product_id)
    write_outputs(args.out, segment)
    print(args.out / "result.json")
    return EXIT_OK


def folder_product_id(name: str) -> str:
    """Turn a folder name into a valid product id, or a random one when nothing usable is left.

    Every run of characters outside letters, digits, '.', '_' and '-' becomes '-', leading
    '.', '_' and '-' are dropped, and the id is cut to 128 characters: "has space" gives "has-space".
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).lstrip("._-")[:128]
    return payload.parse_product_id(cleaned or None)


def run_batch(args: argparse.Namespace) -> int:
    """Segment every set of a manifest; a failed set gets error.json and the run goes on."""
    sets = read_batch_manifest(args.manifest)
    check_out_folder(args.out)
    # Image paths are relative to the manifest's folder; a manifest read from a pipe has none.
    base = args.manifest.resolve().parent if args.manifest.is_file() else Path.cwd()
    # Every set's folder is checked against the inputs of all sets, since one set's outputs
    # could replace another set's photo.
    all_inputs = [args.manifest, *(base / name for entry in sets for name in manifest_image_names(entry))]
    failed = []
    without_document = []
    for entry in tqdm(sets, desc="segmenting", unit="set", file=sys.stderr):
        set_id = entry["id"]
        folder = args.out / set_id
        try:
            check_inputs_kept(all_inputs, folder)
            check_entry_fields(entry)
            paths = [base / name for name in entry["images"]]
            segment = build_segment(paths, threshold=args.threshold, category=entry.get("category"), product_id=set_id)
            write_outputs(folder, segment)
        except InputWouldBeReplacedError as err:
            # error.json would replace that input as well, so the set's folder is left alone.
            failed.append(set_id)
            without_document.append(set_id)
            tqdm.write(f"fashion-seg: set {set_id} failed: {err}", file=sys.stderr)
        except (errors.ApiError, CliError, ManifestError) as err:
            failed.append(set_id)
            api_error = err if isinstance(err, errors.ApiError) else errors.InvalidRequestError(str(err), image_index=err.image_index)
            tqdm.write(f"fashion-seg: set {set_id} failed: {api_error.message}", file=sys.stderr)
            write_error_document(folder, api_error)
    if failed:
        note = "see their error.json"
        if without_document:
            note += f", except for {', '.join(without_document)}, whose folder was left alone"
        print(f"fashion-seg: {len(failed)} of {len(sets)} sets failed: {', '.join(failed)}; {note}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def manifest_image_names(entry: Mapping[str, Any]) -> list[str]:
    """Return the image names of a manifest entry that are strings, even when the entry is invalid."""
    images = entry.get("images")
    if not isinstance(images, list):
        return []
    return [name for name in images if isinstance(name, str)]


def run_invoke(args: argparse.Namespace) -> int:
    """Invoke lambda_handler on an event file; exit 1 when the function reported a failure."""
    event = read_json(args.event, description="event file")
    if args.out is not None:
        check_out_folder(args.out)
        check_inputs_kept([args.event], args.out)
    # LocalContext has every attribute the handler and its logger read.
    context = cast(LambdaContext, LocalContext(aws_request_id=f"local-{uuid.uuid4()}"))
    try:
        result = app.lambda_handler(event, context)
    except errors.TemporaryFailure as err:
        # Lambda retries an S3 notification whose handler raised this.
        print(f"fashion-seg: the function failed and Lambda would retry the event: {err}", file=sys.stderr)
        if args.out is not None:
            # The earlier run's result.json would point at S3 results that this run deleted.
            prepare_output_folder(args.out)
            document = {"error": {"code": "temporary_failure", "message": str(err), "image_index": None}}
            write_file(args.out / "error.json", (json.dumps(document, indent=2) + "\n").encode())
            print(args.out / "error.json")
        return EXIT_FAILED
    failed = invoke_failed(event, result)
    if args.out is not None and isinstance(result, dict):
        saved_path = save_invoke_response(args.out, result, failed=failed)
        print(saved_path)
    else:
        saved_path = None
        print(json.dumps(result, indent=2))
    if failed:
        location_note = f"; its response is in {saved_path}" if saved_path else ""
        print(f"fashion-seg: the function reported a failure{location_note}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def invoke_failed(event: object, result: object) -> bool:
    """Check whether the handler's return value reports a failure.

    These count as failures: an HTTP status of 400 or more, an error document, and an S3
    notification reply with an "error" in any manifest entry. An S3 Batch Operations reply
    fails when a task's resultCode is not "Succeeded" or a task of the event has no result.
    """
    if not isinstance(result, dict):
        return False
    status = result.get("statusCode", 200)
    if (isinstance(status, int) and status >= 400) or "error" in result:
        return True
    manifests = result.get("manifests")
    if isinstance(manifests, list) and any(isinstance(entry, dict) and "error" in entry for entry in manifests):
        return True
    tasks = result.get("results")
    if "invocationSchemaVersion" in result and isinstance(tasks, list):
        expected = len(event.get("tasks", [])) if isinstance(event, dict) else 0
        not_succeeded = [task for task in tasks if not isinstance(task, dict) or task.get("resultCode") != "Succeeded"]
        return bool(not_succeeded) or len(tasks) < expected
    return False


def save_invoke_response(folder: Path, result: dict[str, Any], *, failed: bool = False) -> Path:
    """Save a handler response under folder and return the path of the file to show.

    A JSON document has each ``{"png_base64": ...}`` location saved as a PNG file and replaced by
    ``{"path": "mask-K.png"}``, and is written to result.json, or to error.json when it is an
    error document or ``failed`` is true (invoke_failed: a failed manifest or Batch Operations
    task in an S3 reply). A response with an API Gateway
    envelope is unwrapped from its body first, and a body that is not JSON (the /predict route's
    PNG) is saved as response.png, base64-decoded when isBase64Encoded is true.

    Returns:
        Path of the written result.json or error.json, or of the saved body.
    Raises:
        CliError: folder cannot be created, or a base64-encoded body is not valid base64.
    """
    body = result.get("body")
    if not isinstance(body, str):
        document = result
    elif result.get("isBase64Encoded") or "json" not in header_value(result, "Content-Type", default="json"):
        return save_body(folder, result, body)
    else:
        try:
            document = json.loads(body)
        except json.JSONDecodeError:
            return save_body(folder, result, body)
    prepare_output_folder(folder)
    for image in document.get("images", []):
        for kind in ("mask", "cutout"):
            location = image.get(kind)
            if isinstance(location, dict) and "png_base64" in location:
                name = results.view_file_name(kind, image["index"])
                write_file(folder / name, base64.b64decode(location["png_base64"]))
                image[kind] = {"path": name}
    # An error document or a reply that reports a failure goes to error.json, as in fashion-seg batch.
    path = folder / ("error.json" if failed or "error" in document else "result.json")
    write_file(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def header_value(result: Mapping[str, Any], name: str, *, default: str) -> str:
    """Return a response header's value, matching the name case-insensitively."""
    headers = result.get("headers")
    if isinstance(headers, dict):
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name.lower():
                return str(value)
    return default


def save_body(folder: Path, result: Mapping[str, Any], body: str) -> Path:
    """Save a non-JSON response body as response.<ext>, the extension taken from its Content-Type."""
    media_type = header_value(result, "Content-Type", default="application/octet-stream").split(";")[0].strip()
    if result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as err:
            raise CliError(f"the response body is marked isBase64Encoded but is not valid base64: {err}") from err
    else:
        data = body.encode("utf-8")
    prepare_output_folder(folder)
    path = folder / f"response{mimetypes.guess_extension(media_type) or '.bin'}"
    write_file(path, data)
    return path


def build_segment(
    paths: Sequence[Path], *, threshold: float, category: str | None, product_id: str
) -> tuple[payload.SegmentRequest, app.Segmentation]:
    """Read, validate and segment local photos; raises ApiError or CliError on bad input.

    An ApiError about one photo is raised again with the photo's path in front of its message.
    """
    payload.check_image_count(len(paths))
    sources = tuple(
        payload.ImageSource(index=index, data=read_file(path, description="photo", image_index=index))
        for index, path in enumerate(paths)
    )
    segment = payload.SegmentRequest(
        images=sources,
        threshold=payload.parse_threshold(threshold),
        category=payload.parse_category(category),
        product_id=product_id,
    )
    try:
        return segment, app.segment_request(segment)
    except errors.ApiError as err:
        if err.image_index is None or not 0 <= err.image_index < len(paths):
            raise
        path = paths[err.image_index]
        raise type(err)(f"{path}: {err.message}", image_index=err.image_index) from err


def write_outputs(folder: Path, segmented: tuple[payload.SegmentRequest, app.Segmentation]) -> None:
    """Write mask-K.png, cutout-K.png and, last, result.json into folder, replacing earlier outputs."""
    segment, segmentation = segmented
    prepare_output_folder(folder)
    started = time.perf_counter()
    encoded = response.encode_views(segmentation.result)
    timings = {**segmentation.timings_ms, "encode": (time.perf_counter() - started) * 1000}
    locations = []
    for index, pngs in enumerate(encoded):
        mask_name, cutout_name = results.view_file_name("mask", index), results.view_file_name("cutout", index)
        write_file(folder / mask_name, pngs.mask)
        write_file(folder / cutout_name, pngs.cutout)
        locations.append((response.file_location(mask_name), response.file_location(cutout_name)))
    document = response.result_document(
        segmentation.result, product_id=segment.product_id, locations=locations, timings_ms=timings
    )
    write_file(folder / "result.json", (json.dumps(document, indent=2) + "\n").encode())


def read_batch_manifest(path: Path) -> list[dict[str, Any]]:
    """Load a batch manifest and check its list and ids; see batch_manifest.check_manifest."""
    sets = read_json(path, description="manifest")
    try:
        return check_manifest(path, sets)
    except ManifestError as err:
        raise CliError(str(err)) from err


def write_error_document(folder: Path, error: errors.ApiError) -> None:
    """Write a failed set's error.json, or report on stderr when the folder cannot be written."""
    try:
        prepare_output_folder(folder)
        (folder / "error.json").write_text(json.dumps(response.error_document(error), indent=2) + "\n")
    except CliError as err:
        tqdm.write(f"fashion-seg: cannot write {folder / 'error.json'}: {err}", file=sys.stderr)
    except OSError as err:
        tqdm.write(f"fashion-seg: cannot write {folder / 'error.json'}: {err.strerror}", file=sys.stderr)


def check_inputs_kept(paths: Sequence[Path], folder: Path) -> None:
    """Reject a run whose outputs would replace one of its own input files.

    prepare_output_folder deletes the files in folder whose names match OUTPUT_NAME, so a
    photo called response.jpg or mask-0.png inside --out would be lost.

    Raises:
        InputWouldBeReplacedError: an input path is such a file.
    """
    try:
        target = folder.resolve()
    except (OSError, ValueError):
        return  # creating the folder will fail and report it
    for path in paths:
        try:
            resolved = path.resolve()
        except (OSError, ValueError):
            continue  # read_file reports an unusable path (a NUL character, a symlink loop)
        # Case-insensitive, since on macOS and Windows mask-0.png also replaces Mask-0.png.
        if resolved.parent == target and OUTPUT_NAME.fullmatch(resolved.name.lower()):
            raise InputWouldBeReplacedError(
                f"{path} is in the output folder {folder} and has the name of an output file, so this run would "
                "replace it; choose another --out folder or rename the file"
            )


def write_file(path: Path, data: bytes) -> None:
    """Write an output file; a file-system error becomes an OutputWriteError that names the path."""
    try:
        path.write_bytes(data)
    except OSError as err:
        raise OutputWriteError(f"cannot write {path}: {err.strerror or err}") from err


def check_out_folder(path: Path) -> None:
    """Reject an --out path that exists and is not a folder, before any work is done."""
    if path.exists() and not path.is_dir():
        raise CliError(f"--out {path} is an existing file; give a folder path, which is created if missing")


def prepare_output_folder(folder: Path) -> None:
    """Create an output folder and its parents, then delete the outputs of an earlier run in it.

    Only the names this CLI writes are deleted (result.json, error.json, mask-K.png, cutout-K.png,
    response.*), so old and new outputs never mix. Other files in the folder stay.

    Raises:
        CliError: the folder cannot be created, or an earlier output cannot be deleted.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create the output folder {folder}: {err.strerror}") from err
    try:
        existing = list(folder.iterdir())
    except OSError as err:
        raise CliError(f"cannot list the output folder {folder}: {err.strerror}") from err
    for path in existing:
        if path.is_file() and OUTPUT_NAME.fullmatch(path.name):
            try:
                path.unlink()
            except OSError as err:
                raise CliError(f"cannot delete the earlier output {path}: {err.strerror}") from err


def read_file(path: Path, *, description: str, image_index: int | None = None, regular_only: bool = True) -> bytes:
    """Read a local file of at most MAX_LOCAL_FILE_BYTES.

    Args:
        path: the file.
        description: what the file is, for messages ("photo", "manifest").
        image_index: index of the photo, attached to a CliError about it.
        regular_only: reject anything but a regular file. A device such as /dev/zero is
            endless, and a named pipe may block forever. With False, a pipe such as
            /dev/stdin is read up to the limit.
    Raises:
        CliError: the file is missing, unreadable, of the wrong kind or too large.
    """
    try:
        # O_NONBLOCK keeps the open of a named pipe with no writer from blocking. fstat below
        # then checks the very file that was opened.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as err:
        raise CliError(f"{description} {path} not found", image_index=image_index) from err
    except OSError as err:
        raise CliError(f"cannot read {description} {path}: {err.strerror}", image_index=image_index) from err
    except ValueError as err:
        # os.open raises ValueError for a path with a NUL character, which no file system accepts.
        raise CliError(f"invalid {description} path {str(path)!r}: {err}", image_index=image_index) from err
    try:
        info = os.fstat(descriptor)
        # Checked before any file object exists: opening one on a folder raises IsADirectoryError.
        if stat.S_ISDIR(info.st_mode) or (regular_only and not stat.S_ISREG(info.st_mode)):
            raise CliError(f"{description} {path} is not a regular file", image_index=image_index)
        if info.st_size > MAX_LOCAL_FILE_BYTES:
            raise CliError(
                f"{description} {path} is {info.st_size} bytes; at most {MAX_LOCAL_FILE_BYTES} bytes are accepted",
                image_index=image_index,
            )
        if stat.S_ISREG(info.st_mode):
            # The size may have grown since fstat(): read one byte past the limit to notice.
            with os.fdopen(descriptor, "rb", closefd=False) as file:
                data = file.read(MAX_LOCAL_FILE_BYTES + 1)
        else:
            # A pipe: opened again without O_NONBLOCK, which waits for its writer.
            with path.open("rb") as stream:
                data = stream.read(MAX_LOCAL_FILE_BYTES + 1)
    except OSError as err:
        raise CliError(f"cannot read {description} {path}: {err.strerror}", image_index=image_index) from err
    finally:
        os.close(descriptor)
    if len(data) > MAX_LOCAL_FILE_BYTES:
        raise CliError(f"{description} {path} is larger than {MAX_LOCAL_FILE_BYTES} bytes", image_index=image_index)
    return data


def read_json(path: Path, *, description: str) -> Any:
    """Read a JSON file (UTF-8, UTF-16 or UTF-32, as json.loads detects them) with read_file's limits.

    Raises:
        CliError: the file cannot be read, is not JSON, nests too deeply or contains an integer
            longer than sys.get_int_max_str_digits() digits.
    """
    data = read_file(path, description=description, regular_only=False)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{description} {path} is not valid JSON: {err}") from err
    except RecursionError as err:
        raise CliError(f"{description} {path} nests JSON arrays or objects too deeply to parse") from err
    except ValueError as err:
        # json.loads raises a plain ValueError for an integer literal over the digit limit.
        raise CliError(
            f"{description} {path} contains a number with more than {sys.get_int_max_str_digits()} digits"
        ) from err


if __name__ == "__main__":
    sys.exit(main())
