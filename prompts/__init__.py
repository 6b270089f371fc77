"""Prompt templates as files, loaded with a clear error for a missing or unknown variable.

Templates use `{name}` placeholders (Python format syntax; `{{` and `}}` for literal braces).
Each file in this folder is one template: `load_prompt("condense_question")` reads
`condense_question.txt`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent

__all__ = ["MissingVariablesError", "PromptTemplate", "UnknownPromptError", "load_prompt", "render_prompt"]


class UnknownPromptError(LookupError):
    """No template file of that name."""


class MissingVariablesError(KeyError):
    """A template was rendered without values for some of its variables."""

    def __init__(self, name: str, missing: list[str]):
        self.name, self.missing = name, missing
        super().__init__(f"prompt {name!r} needs variable(s) {', '.join(missing)}; none given")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    @property
    def variables(self) -> list[str]:
        """Placeholder names in order of first appearance."""
        names: list[str] = []
        for _, field, _, _ in string.Formatter().parse(self.text):
            if field is not None and field not in names:
                names.append(field)
        return names

    def render(self, **values: object) -> str:
        """Fill the placeholders; raises MissingVariablesError naming each one not given."""
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise MissingVariablesError(self.name, missing)
        return self.text.format(**values)


@cache
def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> PromptTemplate:
    """The template `name` (file `NAME.txt` in `directory`)."""
    path = directory / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.txt"))
        raise UnknownPromptError(f"no prompt named {name!r} in {directory}; known: {', '.join(known)}")
    return PromptTemplate(name, path.read_text(encoding="utf-8"))


def render_prompt(name: str, **values: object) -> str:
    return load_prompt(name).render(**values)
