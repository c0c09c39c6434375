"""Where a number came from: code version, input data, checkpoints, libraries and machine of a run.

Plain functions (no Kedro, no MLflow) that the project's tracking hook turns into MLflow run tags and
a run name, so a metric in the MLflow UI can be traced back to its inputs:

* :func:`git_state`: the commit of the checkout and whether it had uncommitted changes;
* :func:`data_fingerprint`: the DVC hash of a dataset folder when DVC tracks it (a ``<folder>.dvc``
  file from ``dvc add``, or a stage output in ``dvc.lock``), else a fingerprint of its file listing
  (relative paths and sizes; named as such, it is not a content hash);
* :func:`checkpoint_fingerprint`: the SHA-256 of a checkpoint file's bytes (the same digest that keys
  the feature cache), or ``random-init (seed N)``;
* :func:`library_versions`, :func:`device_description`;
* :func:`run_name`: the pipeline plus what tells runs apart (checkpoints, key parameters, env).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from sfc.models.checkpoints import file_sha256

LIBRARIES = ("torch", "torchvision", "kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "dvc", "numpy")


def git_state(project: Path) -> dict[str, str]:
    """``{"commit": sha, "dirty": "true"|"false"}`` of the git checkout at ``project`` (``{}`` outside git)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=project, capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": "unknown" if status is None else str(bool(status)).lower()}


def dvc_outputs(project: Path) -> dict[Path, str]:
    """Every output DVC records in this project (``*.dvc`` files and ``dvc.lock``) -> its md5."""
    found: dict[Path, str] = {}
    lock = project / "dvc.lock"
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                if "md5" in out:
                    found[(project / out["path"]).resolve()] = out["md5"]
    skip = {".git", ".dvc", ".venv", "node_modules", "mlruns"}
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            if not name.endswith(".dvc"):
                continue
            spec = yaml.safe_load((Path(dirpath) / name).read_text()) or {}
            for out in spec.get("outs", []) or []:
                if "md5" in out:
                    found[(Path(dirpath) / out["path"]).resolve()] = out["md5"]
    return found


def listing_fingerprint(root: Path) -> str:
    """SHA-256 (first 16 hex) of the sorted relative paths and sizes of every file under ``root``."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for path in files:
        rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
        digest.update(f"{rel}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def data_fingerprint(root: str | Path, project: Path, dvc_outs: Mapping[Path, str] | None = None) -> str:
    """How the dataset at ``root`` is identified: ``dvc-md5 <hash>``, ``listing-sha256 <hash>`` or ``missing``.

    Args:
        root: the dataset folder (or file), relative to ``project`` or absolute.
        project: the project root (where ``dvc.lock`` and ``*.dvc`` files are looked up).
        dvc_outs: the result of a previous lookup, to avoid walking the project once per dataset.
    """
    path = Path(root) if Path(root).is_absolute() else project / root
    if not path.exists():
        return "missing"
    outs = dvc_outputs(project) if dvc_outs is None else dvc_outs
    resolved = path.resolve()
    for out, md5 in outs.items():
        if resolved == out or out in resolved.parents:
            suffix = "" if resolved == out else f" (inside {out.relative_to(project.resolve()).as_posix()})"
            return f"dvc-md5 {md5}{suffix}"
    return f"listing-sha256 {listing_fingerprint(path)}"


def checkpoint_fingerprint(checkpoint: str | None, seed: int | None, project: Path) -> str:
    """``sha256 <hex>`` of the checkpoint file, ``random-init (seed N)``, or ``missing <path>``."""
    if checkpoint is None:
        return f"random-init (seed {seed})"
    path = Path(checkpoint) if Path(checkpoint).is_absolute() else project / checkpoint
    if not path.is_file():
        return f"missing {checkpoint}"
    return f"sha256 {file_sha256(path)}"


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries that decide this project's numbers (and Python's)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_description() -> dict[str, str]:
    """``cpu`` (model and core count) and ``gpu`` (CUDA device names, or ``none``)."""
    import torch

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {"cpu": f"{cpu_model()} ({os.cpu_count()} cores)", "gpu": ", ".join(gpus) or "none"}


def _weights_label(group: Mapping[str, Any] | None) -> str | None:
    """``fc.pth`` / ``resnet50:random`` style label of a backbone or semantic group (None when unused)."""
    if not group or not group.get("arch"):
        return None
    if group.get("checkpoint"):
        return f"{group['arch']}:{Path(group['checkpoint']).name}"
    return f"{group['arch']}:random-init"


def run_name(pipelines: list[str], params: Mapping[str, Any], env: str | None) -> str:
    """The pipeline(s) and what varies between their runs, e.g.
    ``evaluate_davis | resnet18:fc.pth + resnet50:random-init | λ1.75 k10 r'12 t0.05 m20 | demo``.
    """
    parts = ["+".join(pipelines) or "__default__"]
    names = set(pipelines)
    evaluation = names & {"evaluate_davis", "evaluate_jhmdb", "evaluate_vip", "cache_features", "fusion_search"}
    if evaluation:
        nets = [n for n in (_weights_label(params.get("backbone")), _weights_label(params.get("semantic"))) if n]
        if nets:
            parts.append(" + ".join(nets))
    if "fusion_search" in names:
        grid, prop = params.get("fusion_search") or {}, params.get("propagation") or {}
        axes = [("λ", "lambdas", (params.get("fusion") or {}).get("lambda")), ("k", "topks", prop.get("topk")),
                ("r'", "radii", prop.get("radius")), ("t", "temperatures", prop.get("temperature")),
                ("m", "contexts", prop.get("context"))]
        parts.append("grid " + " ".join(
            f"{sym}{grid[key]}" if grid.get(key) is not None else f"{sym}{single}" for sym, key, single in axes
        ).replace(", ", ","))
    elif names & {"evaluate_davis"} or (
        names & {"evaluate_jhmdb", "evaluate_vip"}
        and any((params.get(g) or {}).get("settings") == "shared" for g in ("jhmdb", "vip"))
    ):
        prop = params.get("propagation") or {}
        knobs = []
        if (params.get("semantic") or {}).get("arch"):
            knobs.append(f"λ{(params.get('fusion') or {}).get('lambda')}")
        knobs += [f"k{prop.get('topk')}", f"r'{prop.get('radius')}", f"t{prop.get('temperature')}", f"m{prop.get('context')}"]
        parts.append(" ".join(knobs))
    elif names & {"evaluate_jhmdb", "evaluate_vip"}:
        parts.append("paper settings")
    if "fc_pretrain" in names:
        fc = params.get("fc_pretrain") or {}
        parts.append(f"{fc.get('steps')} steps x {fc.get('batch_size')} @ {fc.get('image_size')}px")
    if "extract_frames" in names:
        frames = params.get("frames") or {}
        parts.append(f"{Path(str(frames.get('root'))).name} ({frames.get('kind')})")
    if env and env != "local":
        parts.append(env)
    return " | ".join(parts)
