"""Fixtures for the browser tests: a JupyterLab server of its own, headless Chromium, a `Lab`.

The server runs copies of the notebooks (JupyterLab may save what it runs) with a fresh
course home, no token, and config/data/settings/workspace folders of its own, so nothing of
the user's JupyterLab state leaks in. Screenshots go to $LLM_COURSE_BROWSER_SHOTS (or a
temporary folder); the test output says where, and a failing test adds one of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from labpage import CHROMEDRIVER, CHROMIUM, Lab, missing_tools, wait_for

ROOT = Path(__file__).resolve().parents[2]
# What the lab's kernels see: smoke scale, offline, this checkout's llm_course, and a live
# plot that may redraw every 0.2 s (it still redraws at every evaluation in any case).
KERNEL_ENV = {"LLM_COURSE_SCALE": "smoke", "LLM_COURSE_PLOT_INTERVAL": "0.2",
              "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
              "TOKENIZERS_PARALLELISM": "false"}
# JupyterLab settings: no news pop-up (it covers the page), no autosave
SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                            "checkForUpdates": False},
            "@jupyterlab/docmanager-extension/plugin": {"autosave": False}}
_active: dict[str, Lab] = {}  # the Lab in use, for the screenshot of a failing test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/status", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def shots() -> Path:
    """The screenshot folder."""
    folder = os.environ.get("LLM_COURSE_BROWSER_SHOTS") or tempfile.mkdtemp(prefix="browser_shots_")
    Path(folder).mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {folder}")
    return Path(folder)


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1: yields (its URL, the folder of notebooks it serves)."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    notebooks = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    for plugin, values in SETTINGS.items():
        path = tmp / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLM_COURSE_", "JUPYTER", "MPLBACKEND", "IPYTHONDIR"))}
    env.update(KERNEL_ENV, LLM_COURSE_HOME=str(tmp / "home"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
               "--ServerApp.password=", f"--ServerApp.root_dir={notebooks}",
               f"--LabApp.user_settings_dir={tmp / 'settings'}",
               f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def tail() -> str:
        return "server log:\n" + "\n".join(log_path.read_text().splitlines()[-25:])

    try:
        wait_for(f"JupyterLab to answer at {url}/api/status",
                 lambda: server.poll() is not None or _answers(url), 90, detail=tail)
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}. {tail()}")
        yield url, notebooks
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the group started above: server and kernels
            server.wait(10)


@pytest.fixture(scope="session")
def driver():
    """Headless Chromium (1400 x 2000), keeping the browser's console log."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.unhandled_prompt_behavior = "accept"  # a "leave the page?" dialog
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def lab(jupyter, driver, shots):
    """The page helper for this module's tests; shuts its sessions down at the end."""
    url, notebooks = jupyter
    page = Lab(driver, url, notebooks, shots)
    _active["lab"] = page
    yield page
    _active.pop("lab", None)
    if page.notebook is not None:
        page.close_notebook()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test (or fixture) leaves a screenshot, named after it, in the folder."""
    report = yield
    page = _active.get("lab")
    if report.failed and page is not None:
        started = time.strftime("%H%M%S")
        try:
            path = page.shot(f"FAILED-{item.name}-{report.when}-{started}")
            report.sections.append(("browser", f"screenshot of the failure: {path}"))
        except Exception as err:  # noqa: BLE001 - the test's own failure matters more
            report.sections.append(("browser", f"no screenshot: {err!r}"))
    return report
