"""Download, as wheels, the dependencies a bare GPU machine lacks for ``gpu_check.sh``.

    python3 benchmarks/gpu_wheels.py                      # into .whl/, for CPython 3.12 x86-64
    python3 benchmarks/gpu_wheels.py --have pip_freeze.txt --python 3.12

Run it where the package index is reached, before the GPU run; carry ``.whl/`` to the GPU
machine, where ``gpu_check.sh`` installs it with ``--no-index``. What is downloaded: this
project's runtime dependencies and theirs (resolved by pip for this machine), minus PyTorch,
minus what the GPU check never imports (``wandb``, ``imageio-ffmpeg``), minus every package the
GPU machine already has (``--have``: a ``pip freeze`` or a list of names; by default
``benchmarks/gpu_image_packages.txt``, the image's list). One wheel per package, built for the
target Python and manylinux; a package published only as source (pure Python) is built here.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
NOT_NEEDED = {"torch", "wandb", "imageio-ffmpeg"}
# Packages that another package installs the same module for (cv2: 72 MB saved).
SAME_MODULE = {"opencv-python": "opencv-python-headless"}
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux1_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """The project's runtime requirements, less those the GPU check does not need."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        r
        for r in project["dependencies"]
        if canonical(re.split(r"[<>=!~ ;\[]", r)[0]) not in NOT_NEEDED
    ]


def resolved(reqs: list[str]) -> dict[str, str]:
    """``{name: version}`` of everything pip would install for ``reqs`` (nothing installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        subprocess.run([*command, "-q", "--report", str(report), *reqs], check=True)
        items = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


def present(path: Path) -> set[str]:
    """Names in a ``pip freeze`` or a plain list (one per line or comma-separated)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    names = re.split(r"[,\n]", "\n".join(lines))
    return {canonical(re.split(r"[<>=@ ]", n.strip())[0]) for n in names if n.strip()}


def download(name: str, version: str, python: str, out: Path) -> None:
    binary = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    binary += ["--python-version", python, "--implementation", "cp", "-d", str(out)]
    binary += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    if subprocess.run([*binary, f"{name}=={version}"]).returncode == 0:
        return
    print(f"[gpu_wheels] {name} {version} has no wheel for the target: building it here")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    subprocess.run([*build, f"{name}=={version}"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--have", type=Path, default=ROOT / "benchmarks/gpu_image_packages.txt")
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()
    have = present(args.have)
    have |= {name for name, other in SAME_MODULE.items() if other in have}
    needed = {n: v for n, v in resolved(requirements()).items() if n not in have | NOT_NEEDED}
    args.out.mkdir(exist_ok=True)
    for name, version in sorted(needed.items()):
        download(name, version, args.python, args.out)
    size = sum(p.stat().st_size for p in args.out.glob("*.whl")) / 2**20
    print(f"[gpu_wheels] {len(needed)} wheels, {size:.1f} MiB in {args.out}:")
    print("  " + ", ".join(f"{n}=={v}" for n, v in sorted(needed.items())))


if __name__ == "__main__":
    main()
