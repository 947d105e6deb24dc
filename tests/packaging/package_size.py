"""Report the unzipped size of each artifact in a `sam build` output folder and check the total.

Run after `sam build` (`make package-size` does both):

    .venv/bin/python tests/packaging/package_size.py --build-dir .aws-sam/build

Exits 1 when the function plus its layers exceed the budget. Lambda's own limit for the
unzipped function and all its layers is 250 MB; this project keeps 150 MiB so that the
model and dependency upgrades have room.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

BUDGET_MIB = 150.0
MIB = 1024 * 1024


def directory_size(path: Path) -> int:
    """Return the total size in bytes of the regular files under `path`, not following links."""
    return sum(item.lstat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def measure_build(build_dir: Path) -> dict[str, int]:
    """Return {artifact folder name: unzipped bytes} for each folder in a `sam build` output.

    Raises:
        FileNotFoundError: build_dir does not exist or contains no artifact folder.
    """
    if not build_dir.is_dir():
        raise FileNotFoundError(f"Build folder {build_dir} not found; run `sam build` (or `make build`) first.")
    sizes = {child.name: directory_size(child) for child in sorted(build_dir.iterdir()) if child.is_dir()}
    if not sizes:
        raise FileNotFoundError(f"Build folder {build_dir} contains no artifact folders; run `sam build` again.")
    return sizes


def format_report(sizes: dict[str, int], budget_mib: float) -> str:
    """Format one line per artifact and a total line with the budget, sizes in MiB."""
    width = max(len(name) for name in [*sizes, "total"])
    lines = [f"{name:<{width}}  {size / MIB:8.1f} MiB" for name, size in sizes.items()]
    total = sum(sizes.values())
    lines.append(f"{'total':<{width}}  {total / MIB:8.1f} MiB (budget {budget_mib:.0f} MiB, unzipped)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the size report; return 1 when the total exceeds the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"), help="sam build output folder")
    parser.add_argument("--budget-mib", type=float, default=BUDGET_MIB, help="largest allowed total, in MiB")
    args = parser.parse_args(argv)

    sizes = measure_build(args.build_dir)
    print(format_report(sizes, args.budget_mib))
    total = sum(sizes.values())
    if total > args.budget_mib * MIB:
        print(f"Function plus layers take {total / MIB:.1f} MiB unzipped, over the {args.budget_mib:.0f} MiB budget.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
