"""JupyterLab in headless Chromium, as a learner sees it: open a notebook, Run All, read outputs.

Every wait polls a condition under a deadline (`wait_for`); nothing sleeps a fixed time
except the short pause between two polls. Outputs are read with `textContent`, because
`innerText` is empty for cells scrolled off screen.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL_HINT = ("install with: apt-get update && apt-get install -y chromium chromium-driver; "
                ".venv/bin/pip install 'selenium>=4.20'")

# the open notebook (the `?reset` URL shows exactly one)
NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
ERROR_OUTPUTS = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                 '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
# The lab toolkit has no ids for cells: the i-th code cell on the page is the i-th in the file.
_CELL_STATE_JS = f"""
const cells = Array.from(document.querySelectorAll('{NB} .jp-CodeCell'));
const errors = Array.from(document.querySelectorAll('{NB} :is({ERROR_OUTPUTS})'))
    .map(e => e.textContent).filter(t => t.includes('Traceback'));
return {{prompts: cells.map(c => c.querySelector('.jp-InputPrompt').textContent.trim()),
         errors: errors}};
"""

# The images in an element, each as [a fingerprint of its pixels (FNV-1a of a canvas copy,
# whatever its data:/blob: URL), its width, loaded?]. A JS function: `(IMAGES_FN)(element)`.
IMAGES_FN = """(root) => Array.from(root.querySelectorAll('img')).map(img => {
  const loaded = img.complete && img.naturalWidth > 0;
  let key = img.src;
  if (loaded) {
    try {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      c.getContext('2d').drawImage(img, 0, 0);
      key = c.toDataURL();
    } catch (e) {}
  }
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) { h = Math.imul(h ^ key.charCodeAt(i), 16777619); }
  return [key.length + ':' + (h >>> 0).toString(16), img.naturalWidth, loaded];
})"""


def missing_tools() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is not installed: {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not importable: {INSTALL_HINT}"
    return None


def wait_for(what: str, condition: Callable[[], Any], timeout: float, every: float = 0.25,
             detail: Callable[[], str] = lambda: "") -> Any:
    """Poll `condition()` until it returns something truthy; return that, or fail after
    `timeout` seconds saying `what` never happened (and `detail()`, the state last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}. {detail()}")
        time.sleep(every)


def code_cell_index(notebook: Path, needle: str) -> int:
    """The position, among the code cells of `notebook`, of the first one containing `needle`."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells):
        if needle in "".join(cell["source"]):
            return i
    raise AssertionError(f"{notebook.name} has no code cell containing {needle!r}")


class Lab:
    """One browser tab on one JupyterLab server; `console` gathers the browser's log."""

    def __init__(self, driver: Any, url: str, root: Path, shots: Path) -> None:
        self.driver, self.url, self.root, self.shots = driver, url, root, shots
        self.console: list[dict[str, Any]] = []
        self.notebook: Path | None = None
        self._xsrf = ""

    # -- the REST API -----------------------------------------------------------------------------
    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API; non-GET calls send the `_xsrf` cookie as X-XSRFToken."""
        request = urllib.request.Request(self.url + path, method=method)
        if method != "GET":
            request.add_header("Cookie", f"_xsrf={self._xsrf}")
            request.add_header("X-XSRFToken", self._xsrf)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_state(self) -> str:
        """The open notebook's kernel state from the server ('idle', 'busy', ...; '' if none)."""
        for session in self.api("/api/sessions"):
            if self.notebook and session["path"] == self.notebook.name and session.get("kernel"):
                return session["kernel"]["execution_state"]
        return ""

    def close_notebook(self) -> None:
        """Leave the page and shut down every session (and its kernel) through the REST API."""
        self.drain_console()
        self.driver.get("about:blank")
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")
        wait_for("the sessions to close", lambda: self.api("/api/sessions") == [], 30)
        self.notebook = None

    # -- the page ---------------------------------------------------------------------------------
    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def open(self, name: str) -> None:
        """Open notebooks/NAME alone (`?reset`) and wait for its cells and an idle kernel."""
        from selenium.webdriver.common.by import By

        if self.notebook is not None:
            self.close_notebook()
        self.notebook = self.root / name
        n_code = sum(c["cell_type"] == "code" for c in json.loads(self.notebook.read_text())["cells"])
        self.driver.get(f"{self.url}/lab/tree/{name}?reset")
        wait_for(f"{name}'s {n_code} code cells to show",
                 lambda: len(self.driver.find_elements(By.CSS_SELECTOR, f"{NB} .jp-CodeCell")) == n_code,
                 60)
        wait_for(f"{name}'s kernel to start", lambda: self.kernel_state() == "idle", 120,
                 detail=lambda: f"kernel state: {self.kernel_state()!r}")
        self._xsrf = next((c["value"] for c in self.driver.get_cookies() if c["name"] == "_xsrf"), "")

    def run_all(self, timeout: float, quiet_polls: int = 4) -> dict[str, Any]:
        """Run -> Run All Cells from the menu bar, then wait until the run is over.

        Over means: no prompt shows [*], every prompt has a number (or a cell raised, which
        stops Run All), and the kernel is idle for `quiet_polls` polls in a row.
        """
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        menu = (By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel')][text()='Run']")
        WebDriverWait(self.driver, 30).until(ec.element_to_be_clickable(menu)).click()
        item = (By.CSS_SELECTOR, '.lm-Menu [data-command="runmenu:run-all"]')
        WebDriverWait(self.driver, 30).until(ec.element_to_be_clickable(item)).click()
        seen: dict[str, Any] = {"quiet": 0}

        def over() -> dict[str, Any] | None:
            state = self.cell_state()
            prompts = state["prompts"]
            settled = "[*]:" not in prompts and (
                all(re.fullmatch(r"\[\d+\]:", p) for p in prompts) or state["errors"])
            seen["quiet"] = seen["quiet"] + 1 if settled and self.kernel_state() == "idle" else 0
            seen["state"] = state
            return state if seen["quiet"] >= quiet_polls else None

        start = time.monotonic()
        state = wait_for(f"Run All of {self.notebook.name} to finish", over, timeout,
                         detail=lambda: f"prompts: {' '.join(seen.get('state', {}).get('prompts', []))}")
        print(f"{self.notebook.name}: Run All took {time.monotonic() - start:.0f} s")
        return state

    def cell_state(self) -> dict[str, list[str]]:
        """The code cells' prompts ('[3]:', '[*]:', '[ ]:') and the tracebacks on the page."""
        return self.js(_CELL_STATE_JS)

    def images(self, element: Any) -> list[tuple[str, int, bool]]:
        """The images in `element`: (a fingerprint of the pixels, width, loaded) for each."""
        return [tuple(i) for i in self.js(f"return ({IMAGES_FN})(arguments[0]);", element)]

    def code_cell(self, needle: str) -> Any:
        """The code cell on the page whose source (in the .ipynb) contains `needle`."""
        from selenium.webdriver.common.by import By

        cells = self.driver.find_elements(By.CSS_SELECTOR, f"{NB} .jp-CodeCell")
        return cells[code_cell_index(self.notebook, needle)]

    def texts(self, selector: str, within: Any = None) -> list[str]:
        """textContent of every match of `selector` (in the open notebook, or in `within`)."""
        return self.js("const root = arguments[0] || document.querySelector(arguments[2]);"
                       "return Array.from(root.querySelectorAll(arguments[1]))"
                       ".map(e => e.textContent);", within, selector, NB)

    def shot(self, name: str, element: Any = None) -> Path:
        """Save a screenshot of the window (scrolled to `element` first) as SHOTS/NAME.png."""
        if element is not None:
            self.js("arguments[0].scrollIntoView({block: 'start'});", element)
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def drain_console(self) -> list[dict[str, Any]]:
        """Move the browser's new log entries into `self.console` (the driver hands each once)."""
        self.console += self.driver.get_log("browser")
        return self.console
