"""No lesson's markdown holds placeholder text (an unfilled WHAT_THE_FINETUNES_SHOW reached 09a once).

The rule: outside code spans and maths, no ALL_CAPS_WORD_WITH_UNDERSCORES, and no TODO, XXX,
FIXME or TBD. Environment variables and constants are names, so a lesson writes them as code
(`HF_HUB_OFFLINE`, `LLM_COURSE_SCALE`), where the rule does not look; plain capitals without an
underscore (NER, BBC, GPT, LoRA) are ordinary words. Code cells are not checked: constants are
names there.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
PLACEHOLDER = re.compile(r"\b(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|TODO|XXX+|FIXME|TBD)\b")
CODE_AND_MATHS = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.S)


def placeholders(markdown: str) -> list[str]:
    """The placeholder tokens of one markdown text (empty when clean)."""
    return PLACEHOLDER.findall(CODE_AND_MATHS.sub(" ", markdown))


@pytest.mark.parametrize("text,found", [
    ("WHAT_THE_FINETUNES_SHOW, at `laptop`: ...", ["WHAT_THE_FINETUNES_SHOW"]),
    ("Fill in: TODO. Also XXX and FIXME and TBD.", ["TODO", "XXX", "FIXME", "TBD"]),
    ("set HF_HUB_OFFLINE=1 before importing", ["HF_HUB_OFFLINE"]),  # write it as code
    ("Set `HF_HUB_OFFLINE=1` and `LLM_COURSE_SCALE`.", []),
    ("```bash\nexport LLM_COURSE_HOME=/tmp/x\n```", []),
    ("$W_Q$ and $$\\mathrm{SOFT\\_MAX}$$ are maths", []),
    ("NER on BBC news with GPT-2, LoRA and PEFT; a TODOS list; Todo", []),
])
def test_the_rule_catches_placeholders_and_leaves_names_in_code_alone(text, found):
    assert placeholders(text) == found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_holds_no_placeholder(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            found = placeholders("".join(cell["source"]))
            assert not found, f"{path.name} markdown cell {i} holds placeholder text: {found}"
