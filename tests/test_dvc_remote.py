"""Datasets round-trip through a DVC remote as a team shares them (docs/datasets.md, "Sharing data").

In a copy of the project (its git-visible files, committed in a fresh git repository): ``dvc repro
demo_data`` writes the demo datasets into DVC's cache, ``dvc add`` tracks a checkpoint file the way a
user versions their own semantic checkpoint, ``dvc push`` sends both to a local remote; with the
workspace files and the cache deleted, ``dvc pull`` brings back byte-identical files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".gitignore" not in p.name
    }


def test_push_and_pull_through_a_local_remote(tmp_path: Path) -> None:
    project = tmp_path / "project"
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("data/"):
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    _run(["git", "init", "-q"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-q", "-m", "copy"], project, env)

    _run([*DVC, "repro", "demo_data"], project, env)  # `sh scripts/venv sfc ...`: this venv's sfc
    checkpoints = project / "data" / "01_raw" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "semantic_resnet50.pth").write_bytes(os.urandom(4096))
    _run([*DVC, "add", "data/01_raw/checkpoints/semantic_resnet50.pth"], project, env)
    assert (checkpoints / "semantic_resnet50.pth.dvc").is_file()
    remote = tmp_path / "remote"
    _run([*DVC, "remote", "add", "-d", "teamstore", str(remote)], project, env)
    before = {**_digests(project / "data" / "demo" / "01_raw"), **_digests(checkpoints)}
    assert len(before) > 100
    _run([*DVC, "push"], project, env)

    shutil.rmtree(project / "data" / "demo" / "01_raw")
    (checkpoints / "semantic_resnet50.pth").unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    _run([*DVC, "pull", "demo_data", "data/01_raw/checkpoints/semantic_resnet50.pth.dvc"], project, env)
    after = {**_digests(project / "data" / "demo" / "01_raw"), **_digests(checkpoints)}
    assert after == before
    assert "up to date" in _run([*DVC, "status", "demo_data"], project, env).lower()
