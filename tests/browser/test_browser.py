"""The notebooks in a real browser: JupyterLab in headless Chromium, driven like a learner.

Headless execution (nbval, papermill) checks what the kernel computes; only a browser shows
what reaches the page: images, widgets that render (or "Loading widget..."), values a
slider sends back, and live plots that update (or stay at their first frame).

Needs Chromium, chromedriver and selenium; without them the module is skipped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pytest
from labpage import IMAGES_FN, Lab, missing_tools, wait_for

if missing_tools():
    pytest.skip(missing_tools(), allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

# Deadlines in seconds. Measured at smoke on 2 CPU cores: 13 s, 11 s and 4 s when idle;
# 50 s, 160 s and 40 s while other test runs shared the cores.
RUN_ALL_00 = 180
RUN_ALL_02 = 480  # the fresh course home first trains lesson 01's tokenizer
TRAINING = 480  # one Train click: 40 steps, an evaluation (and a plot frame) every 4
WIDGET_REPRS = ("Loading widget", "Error displaying widget", "FloatLogSlider(", "VBox(children=")
# the page's pictures that need the internet (the Colab badge): their load errors are expected
NETWORK_ONLY = ("colab.research.google.com", "githubusercontent.com")

PANEL = ("//div[contains(@class, 'widget-vbox')][.//b[normalize-space()='Hyperparameters']]"
         "[.//button[normalize-space()='Train']]")


@pytest.fixture(scope="module")
def nb00(lab: Lab) -> Lab:
    """00_setup, run with Run All Cells."""
    lab.open("00_setup.ipynb")
    lab.run_all(RUN_ALL_00)
    lab.shot("00-after-run-all", lab.code_cell("The course at a glance"))
    return lab


def test_00_runs_clean_with_images_and_widgets(nb00: Lab):
    """Every cell ran without error, the course map is an image, the widgets are widgets."""
    state = nb00.cell_state()
    errors = state["errors"] + nb00.texts('[data-mime-type="application/vnd.jupyter.error"]')
    assert not errors, "error output on the page:\n" + "\n---\n".join(e[-1500:] for e in errors)
    prompts = state["prompts"]
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"cells not run: {prompts}"

    course_map = nb00.code_cell("The course at a glance")
    widths = nb00.js("return Array.from(arguments[0].querySelectorAll('.jp-OutputArea-output img'))"
                     ".map(i => i.naturalWidth);", course_map)
    assert widths and max(widths) > 300, f"the course map is not an image (img widths {widths})"

    sliders = nb00.driver.find_elements(By.CSS_SELECTOR, ".jupyter-widgets.widget-slider")
    assert sliders, "no slider widget rendered on the page"
    outputs = nb00.texts(".jp-OutputArea-output")
    shown = [t[:200] for t in outputs if any(r in t for r in WIDGET_REPRS)]
    assert not shown, f"widgets shown as text instead of widgets: {shown}"


def test_00_slider_updates_its_output(nb00: Lab):
    """Moving the lr slider with the keyboard prints the value its readout shows."""
    cell = nb00.code_cell("FloatLogSlider")
    handle = cell.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    readout = cell.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout")

    def printed() -> str:
        return " ".join(nb00.texts(".widget-output", cell)).strip()

    before = printed()
    assert before == "learning rate = 1.0e-03", f"unexpected first output: {before!r}"
    nb00.js("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.send_keys(Keys.ARROW_RIGHT)
    after = wait_for("the slider's output to change", lambda: printed() != before and printed(),
                     30, every=0.1, detail=lambda: f"output: {printed()!r}")
    nb00.shot("00-after-slider", cell)
    match = re.fullmatch(r"learning rate = (\S+)", after)
    assert match, f"unexpected output after the move: {after!r}"
    value, shown = float(match.group(1)), float(readout.get_attribute("textContent"))
    assert value > 1e-3, f"moving right should raise the rate: printed {after!r}"
    assert abs(value - shown) <= 0.05 * shown, f"printed {after!r}, the readout shows {shown}"


@dataclass
class TrainRun:
    """What the panel's output showed while one Train click ran."""

    text: str = ""
    frames: list[str] = field(default_factory=list)  # image fingerprints while training, in order
    final: str = ""
    final_width: int = 0
    seconds: float = 0.0


@pytest.fixture(scope="module")
def train_run(nb00: Lab) -> TrainRun:
    """02_pretraining_gpt run with Run All, then its untouched panel's Train clicked."""
    lab = nb00
    lab.open("02_pretraining_gpt.ipynb")
    errors = lab.run_all(RUN_ALL_02)["errors"]
    assert not errors, "Run All of 02 raised:\n" + "\n---\n".join(e[-1500:] for e in errors)
    panels = lab.driver.find_elements(By.XPATH, PANEL)
    assert panels, "02 shows no hyperparameter panel (a 'Hyperparameters' box with Train)"
    panel = panels[-1]
    button = panel.find_element(By.XPATH, ".//button[normalize-space()='Train']")
    output = panel.find_element(By.CSS_SELECTOR, ".widget-output")
    lab.js("arguments[0].scrollIntoView({block: 'start'});", panel)
    run, start = TrainRun(), time.monotonic()
    button.click()

    def text() -> str:
        return output.get_attribute("textContent")

    wait_for("the Train button to be disabled (or the run to print)",
             lambda: not button.is_enabled() or "training with" in text(), 60, every=0.05)

    def finished() -> bool:  # each poll notes a new plot frame, until the button is enabled
        busy, images = lab.js(f"return [arguments[0].disabled, ({IMAGES_FN})(arguments[1])];",
                              button, output)
        frame = "|".join(key for key, _, _ in images)
        if busy and frame and (not run.frames or run.frames[-1] != frame):
            run.frames.append(frame)
        return not busy

    wait_for("the Train button to be enabled again", finished, TRAINING, every=0.05)
    wait_for("the final plot to load", lambda: all(ok for _, _, ok in lab.images(output)), 30)
    final = lab.images(output)
    run.final = "|".join(key for key, _, _ in final)
    run.final_width = max((width for _, width, _ in final), default=0)
    run.text, run.seconds = text(), time.monotonic() - start
    print(f"Train: {run.seconds:.0f} s, {len(run.frames)} plot frames seen while it ran")
    lab.shot("02-panel-after-train", panel)
    return run


def test_console_has_no_errors(nb00: Lab, train_run: TrainRun):
    """The browser logged no SEVERE error (besides pictures that need the internet).

    It runs before the 02 assertions, so `-x` still reports it when they fail.
    """
    def expected(message: str) -> bool:
        urls = re.findall(r"https?://[^\s\"')]+", message)
        offline = "net::ERR_" in message and urls and not any("//127.0.0.1" in u for u in urls)
        return offline or any(host in message for host in NETWORK_ONLY)

    severe = [e["message"] for e in nb00.drain_console() if e["level"] == "SEVERE"]
    unexpected = [m for m in severe if not expected(m)]
    assert not unexpected, "SEVERE browser console entries:\n" + "\n".join(unexpected)


def test_02_panel_trains_the_preset_with_a_live_plot(train_run: TrainRun):
    """Train on the untouched panel: the preset as it is, and a plot that moves while it runs."""
    run, problems = train_run, []
    said = next((line for line in run.text.splitlines() if line.startswith("training with")),
                "nothing")
    if "Traceback" in run.text:
        problems.append(f"training raised:\n{run.text[-1500:]}")
    if said != "training with the starting values":
        problems.append(f"(i) no control was touched, yet the panel printed {said!r}, not "
                        "'training with the starting values': the browser moved the preset")
    if not run.frames:
        problems.append("(ii) no live plot image appeared in the panel's output while training")
    elif len(run.frames) < 2:
        problems.append(f"(ii) the live plot never changed during {run.seconds:.0f} s of training "
                        "(one frame seen while the button was disabled): its updates do not "
                        "reach the page")
    if run.frames and run.final == run.frames[0]:
        problems.append("(iii) after training the plot is still its first frame")
    if run.final and run.final_width <= 300:
        problems.append(f"(iii) the final plot is only {run.final_width} px wide")
    assert not problems, "\n".join(problems)
