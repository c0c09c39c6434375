"""MLflow is the project's results browser: check it as a person would, in a real browser.

One real ``evaluate_davis`` run (``kedro_session`` fixture: a ``KedroSession`` in a child process,
MLflow store ``sqlite:///<tmp_path>/mlflow.db``, artifacts under ``tmp_path/mlruns``) on the tiny
generated DAVIS dataset; then the MLflow UI (``mlflow ui``, one worker, as ``make ui`` starts it) on
that store, and headless Debian Chromium driven by Playwright, from a fresh browser profile:

* front page -> "Model training" switch -> experiment ``sfc``: the runs table, no GenAI page;
* the run's page lists every metric with the value the UI prints for it;
* the run's Artifacts tab shows ``overlays.png``: the ``<img>`` decodes to the logged PNG's size.

Why the switch: MLflow 3.17.2's UI picks its GenAI or Model training view from the URL parameter
``workflowType``, else from the browser's last choice (localStorage ``mlflow.workflowType_v1``), else
GenAI. The experiment tag ``mlflow.experimentKind`` (set by :class:`sfc.hooks.TrackingHooks`) is
checked on the store, but this UI version does not read it to choose the view (its feature flag for
the global switch is hard-wired on), so a fresh browser opens the experiment in the GenAI view.

Screenshots (runs table, run page, artifact view) go to ``$SFC_UI_SCREENSHOTS`` when set, else to
``tmp_path/screenshots``. Skipped, never failed, when ``/usr/bin/chromium`` (``make browser``) or
Playwright is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.pipelines.conftest import KedroSessionRun

CHROMIUM = Path("/usr/bin/chromium")
# Headless, offline: without the background-networking flags Chromium tries the (closed) network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_START_TIMEOUT_S = 90
VIEWPORT = {"width": 1400, "height": 1000}

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is missing: `pip install -e '.[dev]'` installs it"
)


# ------------------------------------------------------------------------------------ helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowUI:
    """``mlflow ui`` (one worker) on a SQLite store, in its own process group; ``stop`` ends all of it."""

    def __init__(self, db: Path, cwd: Path) -> None:
        self.db, self.cwd, self.log = db, cwd, cwd / "mlflow_ui.log"
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        port = _free_port()
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            # No GenAI job runner (7 huey consumers): not needed to browse runs.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [
            str(Path(sys.executable).with_name("mlflow")), "ui",
            "--backend-store-uri", f"sqlite:///{self.db}",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=self.cwd,  # --serve-artifacts' default ./mlartifacts stays out of the repository
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        self.url = f"http://127.0.0.1:{port}"

    def wait_until_up(self, timeout_s: float = UI_START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"`mlflow ui` exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:  # URLError, connection refused, timeout
                pass
            time.sleep(0.5)
        pytest.fail(f"`mlflow ui` did not answer within {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to the process group (``mlflow ui`` and its uvicorn worker), SIGKILL if it lingers."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.5)  # the worker exits just after its parent
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass  # the whole group is gone
        self.proc.wait()


@pytest.fixture()
def mlflow_ui(tmp_path: Path) -> Iterator[MlflowUI]:
    """An :class:`MlflowUI` on ``tmp_path/mlflow.db`` (not started), always stopped at teardown."""
    ui = MlflowUI(tmp_path / "mlflow.db", tmp_path)
    try:
        yield ui
    finally:
        ui.stop()


def _wait_for_experiment(db: Path, name: str, run: Future) -> None:
    """Until the store holds experiment ``name`` (its tables are then complete), or ``run`` ended."""
    while not run.done():
        if db.exists():
            try:
                with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)) as con:
                    if con.execute("SELECT 1 FROM experiments WHERE name = ?", (name,)).fetchone():
                        return
            except sqlite3.Error:  # no table yet, or locked by the run's migration
                pass
        time.sleep(0.5)


def _as_shown(value: float) -> str:
    """A metric value as the UI prints it (JavaScript's ``String(number)`` for values in [1e-4, 1e16))."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _expect_model_training_layout(page: Any) -> None:
    """The side bar of MLflow's "Model training" view, without the pages of its GenAI view."""
    sync_api.expect(page.get_by_text("Model registry", exact=True)).to_be_visible()
    for genai_only in ("Evaluation runs", "Sessions", "Judges", "Observability", "Prompts & versions"):
        sync_api.expect(page.get_by_text(genai_only, exact=True)).to_have_count(0)
    sync_api.expect(page.get_by_role("link", name="Evaluations", exact=True)).to_have_count(0)  # breadcrumb


def _screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SFC_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------------------------------ the test


def test_mlflow_ui_shows_the_run(
    tiny_davis: Path,
    tmp_path: Path,
    kedro_session: KedroSessionRun,
    mlflow_ui: MlflowUI,
) -> None:
    # A real project run (metrics, parameters, the overlay figure) logged by kedro-mlflow. The UI
    # starts as soon as the run has created its experiment, so that both start-ups overlap.
    runtime_params = {
        "davis": {"root": str(tiny_davis), "max_frames": 3},
        "propagation": {"topk": 5, "radius": 4, "context": 3},
        "runtime": {"device": "cpu", "eval_workers": 1, "overlays": 1},
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        session = pool.submit(kedro_session, ["evaluate_davis"], runtime_params)
        _wait_for_experiment(mlflow_ui.db, "sfc", session)
        if not session.done():
            mlflow_ui.start()
        import mlflow  # heavy: imported only by this test, while the run goes on

        proc = session.result()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if mlflow_ui.proc is None:
        mlflow_ui.start()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mlflow_ui.db}")
    experiment = client.get_experiment_by_name("sfc")
    exp_id = experiment.experiment_id
    # Set by sfc.hooks.TrackingHooks; MLflow 3.17.2's UI does not use it to pick its view (see top).
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development", experiment.tags
    (run,) = client.search_runs([exp_id])
    run_id, run_name, metrics = run.info.run_id, run.info.run_name, run.data.metrics
    assert run.info.status == "FINISHED"
    assert {"JF_mean", "frames_per_second"} <= set(metrics), sorted(metrics)
    overlays = Path(unquote(urlparse(run.info.artifact_uri).path)) / "overlays.png"
    assert overlays.is_file(), sorted(p.name for p in overlays.parent.iterdir())

    shots = _screenshot_dir(tmp_path)
    expect = sync_api.expect

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # fresh profile: no remembered GenAI/Model training choice
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            mlflow_ui.wait_until_up()
            url = mlflow_ui.url
            browser.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            page = browser.new_page()

            # Pop-ups a person closes: the "Detect Issues" tip of the GenAI pages, the MLflow Assistant
            # panel that opens itself on a first visit.
            page.add_locator_handler(
                page.get_by_role("button", name="Got it", exact=True), lambda b: b.click()
            )
            page.add_locator_handler(
                page.get_by_role("button", name="Close", exact=True), lambda b: b.click()
            )

            # The front page, switched once to "Model training" (a fresh browser starts in GenAI, and
            # remembers the switch), then the experiment: its runs table, no GenAI page in the side bar.
            page.goto(f"{url}/")
            page.get_by_text("Model training", exact=True).click()
            page.get_by_role("link", name="sfc", exact=True).click()
            page.wait_for_url(re.compile(rf"#/experiments/{exp_id}/runs\?.*workflowType=machine_learning"))
            run_link = page.get_by_role("link", name=run_name, exact=True)
            expect(run_link).to_be_visible()
            _expect_model_training_layout(page)
            page.screenshot(path=str(shots / "experiment_runs.png"))

            # The run's page: every metric with its value, as the UI prints it.
            run_link.click()
            page.wait_for_url(re.compile(rf"#/experiments/{exp_id}/runs/{run_id}(\?|$)"))
            expect(page.get_by_role("heading", name=run_name)).to_be_visible()
            _expect_model_training_layout(page)  # still: the run's URL does not say which view
            metrics_heading = page.get_by_role("heading", name=f"Metrics ({len(metrics)})", exact=True)
            expect(metrics_heading).to_be_visible()
            for name, value in metrics.items():
                row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
                expect(row.get_by_role("cell")).to_have_text([name, _as_shown(value)])
            metrics_heading.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "run_page.png"))

            # The Artifacts tab shows the overlay figure, fetched from the run's artifact store.
            page.get_by_role("tab", name="Artifacts").click()
            with page.expect_response(lambda r: "/get-artifact?" in r.url and "overlays.png" in r.url) as got:
                page.get_by_text("overlays.png", exact=True).click()
            response = got.value
            assert response.status == 200 and response.headers.get("content-type", "").startswith("image/png")
            image = page.locator('img[alt="overlays.png"]')
            expect(image).to_be_visible()
            image.evaluate("img => img.decode()")
            natural: Any = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert tuple(natural) == _png_size(overlays) and natural[0] > 0
            page.screenshot(path=str(shots / "artifact_overlays.png"))
            pages = {"run": f"{url}/#/experiments/{exp_id}/runs/{run_id}", "artifact": page.url}
        finally:
            browser.close()
    (shots / "pages.json").write_text(json.dumps({**pages, "run_id": run_id, "metrics": metrics}, indent=1))
