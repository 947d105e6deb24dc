"""Run the built Lambda artifacts once under the Lambda runtime's Python, outside any venv.

`sam build` installs the dependency layer from manylinux wheels for python3.13, which the
dev venv never imports. This script lays the artifacts out as Lambda does (function code,
then /opt/python, model at MODEL_PATH), invokes handler.app.lambda_handler on
events/direct.json in a fresh python3.13 process and checks the response. Run on a machine
of the layer's architecture:

    .venv/bin/python tests/packaging/smoke_build.py --build-dir .aws-sam/build --python python3.13

boto3, which Lambda's runtime provides, is pip-installed into <build-dir>/../smoke-boto3 first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in the child interpreter: invoke the handler on one event and print a summary as JSON.
CHILD = """
import json, sys
from dataclasses import dataclass
import handler.app, numpy, onnxruntime, PIL

@dataclass
class Context:
    function_name: str = "fashion-seg-smoke"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:fashion-seg-smoke"
    aws_request_id: str = "smoke-0001"

event = json.load(open(sys.argv[1]))
reply = handler.app.lambda_handler(event, Context())
print(json.dumps({
    "python": sys.version.split()[0],
    "numpy": numpy.__file__, "onnxruntime": onnxruntime.__file__, "PIL": PIL.__file__,
    "keys": sorted(reply), "images": len(reply.get("images", [])), "requested": len(event["images"]),
    "error": reply.get("error"),
}))
"""


def install_boto3(python: str, target: Path) -> None:
    """Install boto3 for `python` into `target` unless an earlier run did."""
    if (target / "boto3").is_dir():
        return
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--root-user-action=ignore", "--target", str(target), "boto3"]
    subprocess.run(command, check=True)


def run_smoke(build_dir: Path, python: str, event: Path) -> dict[str, object]:
    """Invoke the built handler in a child `python` and return its summary.

    Raises:
        RuntimeError: the child failed, or its output is not the expected summary.
    """
    boto_dir = build_dir.parent / "smoke-boto3"
    install_boto3(python, boto_dir)
    paths = [build_dir / "SegmentFunction", build_dir / "DependencyLayer" / "python", boto_dir]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(str(path.resolve()) for path in paths),
        "PYTHONNOUSERSITE": "1",
        "MODEL_PATH": str((build_dir / "ModelLayer" / "model" / "fashion-seg.int8.onnx").resolve()),
        "POWERTOOLS_SERVICE_NAME": "fashion-seg",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ORT_THREADS": "1",
    }
    # The child runs from an empty folder so that the repository's own handler/ is not importable.
    workdir = build_dir.parent / "smoke-cwd"
    workdir.mkdir(exist_ok=True)
    result = subprocess.run([python, "-c", CHILD, str(event.resolve())], env=env, cwd=workdir,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Built handler failed under {python} (exit {result.returncode}):\n{result.stderr[-4000:]}")
    try:
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError) as err:
        raise RuntimeError(f"Unexpected output from the built handler:\n{result.stdout[-2000:]}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; return 1 when the response is an error or misses photos."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build", help="sam build output")
    parser.add_argument("--python", default="python3.13", help="interpreter of the Lambda runtime's version")
    parser.add_argument("--event", type=Path, default=REPO / "events" / "direct.json", help="event to invoke with")
    args = parser.parse_args(argv)

    summary = run_smoke(args.build_dir, args.python, args.event)
    print(json.dumps(summary, indent=2))
    layer = str((args.build_dir / "DependencyLayer").resolve())
    problems = [f"{name} imported from {summary[name]}, not the layer" for name in ("numpy", "onnxruntime", "PIL")
                if not str(summary[name]).startswith(layer)]
    if summary["error"] is not None:
        problems.append(f"handler returned an error: {summary['error']}")
    if summary["images"] != summary["requested"]:
        problems.append(f"handler returned {summary['images']} image results for {summary['requested']} photos")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
