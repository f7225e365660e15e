"""The install paths (pip, conda, Colab) and the README agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from llm_course.env import links
from llm_course.env.assets import CARRIERS

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(reqs):
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    expected = _normalise(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "llm-course"
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    options = [p for p in pip_section if p.startswith("-")]
    listed = _normalise([p for p in pip_section if not p.startswith("-")])
    assert listed == expected, "environment.yml and pyproject.toml list different packages"
    assert "-e .[dev]" in options and "-c constraints.txt" in options


def test_torch_is_open_ended_and_pinned_only_by_constraints():
    deps = _normalise(_pyproject()["project"]["dependencies"])
    assert deps["torch"] == ">=2.6", "never pin torch in pyproject: Colab's CUDA torch must stay"
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.MULTILINE)


def test_carriers_are_pinned_exactly_and_the_deps_ones_are_in_pyproject():
    deps = _normalise(_pyproject()["project"]["dependencies"])
    for carrier in CARRIERS.values():
        assert re.fullmatch(r"\d+(\.\d+)*", carrier.version)
        if not carrier.no_deps:
            assert deps[carrier.name] == f"=={carrier.version}"


def _readme_command(name):
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- ci:{name} -->\n```bash\n(.+?)\n```", text, re.DOTALL)
    assert match, f"README.md lacks the ci:{name} command"
    return match.group(1)


def test_readme_has_the_three_commands_and_ci_runs_them():
    setup, run, test = (_readme_command(n) for n in ("setup", "run", "test"))
    assert "\n" not in setup, "set-up must be one command line"
    assert "llm-course assets install" in setup and "-c constraints.txt" in setup
    assert run.startswith(".venv/bin/llm-course run")
    assert "pytest" in test and "--nbval-lax" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_command setup" in ci and "readme_command test" in ci


def test_colab_links_come_from_one_constant():
    readme = (ROOT / "README.md").read_text()
    urls = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", readme)
    assert urls, "README should link each lesson to Colab"
    for url in urls:
        assert url == links.colab_url(url.rsplit("/", 1)[1])
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb")):
        text = nb.read_text()
        assert links.colab_install_command().replace('"', '\\"') in text, (
            f"{nb.name}: its Colab cell must run links.colab_install_command()")
