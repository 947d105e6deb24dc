"""Size report of `sam build` output: measuring, the budget check, and the real build when present."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_size", Path(__file__).with_name("package_size.py"))
    if spec is None or spec.loader is None:
        raise ImportError("tests/packaging/package_size.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package_size = _load_script()


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_directory_size_counts_nested_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.bin", 1000)
    _write(tmp_path / "sub" / "deeper" / "b.bin", 2345)

    assert package_size.directory_size(tmp_path) == 3345


def test_directory_size_skips_symlinks(tmp_path: Path) -> None:
    _write(tmp_path / "real.bin", 500)
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")

    assert package_size.directory_size(tmp_path) == 500


def test_measure_build_lists_each_artifact(tmp_path: Path) -> None:
    _write(tmp_path / "SegmentFunction" / "handler" / "app.py", 10)
    _write(tmp_path / "DependencyLayer" / "python" / "numpy" / "core.so", 300)
    (tmp_path / "template.yaml").write_text("Resources: {}\n")

    sizes = package_size.measure_build(tmp_path)

    assert sizes == {"DependencyLayer": 300, "SegmentFunction": 10}


def test_measure_build_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sam build"):
        package_size.measure_build(tmp_path / "absent")


def test_main_over_budget_returns_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "DependencyLayer" / "big.bin", 2 * 1024 * 1024)

    status = package_size.main(["--build-dir", str(tmp_path), "--budget-mib", "1"])

    assert status == 1
    assert "over the 1 MiB budget" in capsys.readouterr().err


def test_main_within_budget_returns_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "ModelLayer" / "model.onnx", 1024 * 1024)

    status = package_size.main(["--build-dir", str(tmp_path), "--budget-mib", "2"])

    assert status == 0
    assert "ModelLayer" in capsys.readouterr().out


def test_real_build_within_budget() -> None:
    build_dir = REPO_ROOT / ".aws-sam" / "build"
    if not (build_dir / "DependencyLayer").is_dir():
        pytest.skip("no sam build output; `make package-size` builds and checks it")

    total = sum(package_size.measure_build(build_dir).values())

    assert total <= package_size.BUDGET_MIB * package_size.MIB
