"""The documentation site (mkdocs.yml, docs/): it builds, and what it names exists.

The slow test builds the site as ``make docs`` does (``mkdocs build --strict``: a broken link
or anchor, a page the nav leaves out or a docstring the API reference cannot read fails it).
The fast ones read the hand-written pages (README.md and docs/*.md) for the names of config
options and of ``gpta`` command options, which must exist; the CLI and configuration
references are generated from the code at build time, so they cannot go stale.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from pydantic import BaseModel

from gpta.cli import TRAIN_FLAGS, cli
from gpta.config import GptaConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `section.name` in a page that is code, not an option: a function in selection.py and an
# attribute of a Hugging Face model
NOT_OPTIONS = {"selection.adopt", "model.base_model"}
FILE_SUFFIXES = {
    "py",
    "md",
    "onnx",
    "json",
    "jsonl",
    "yaml",
    "toml",
    "sqlite",
    "txt",
    "html",
    "png",
}


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("gpta_docs", ROOT / "docs/hooks/gpta_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(model: type[BaseModel] = GptaConfig, prefix: str = "") -> set[str]:
    """Every option's dotted name, sections included (``training``, ``training.rounds``)."""
    names = set()
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        names.add(dotted)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= _options(field.annotation, f"{dotted}.")
    return names


def _sections() -> list[str]:
    return [
        name
        for name, field in GptaConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]


def test_config_options_named_in_the_pages_exist():
    options = _options()
    sections = "|".join(_sections())
    dotted = re.compile(rf"(?<![\w./-])((?:{sections})\.[a-z_]+)\b(?!\.[a-z])")
    stale = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for name in dotted.findall(line):
                if name.rpartition(".")[2] in FILE_SUFFIXES or name in NOT_OPTIONS:
                    continue
                if name not in options:
                    stale.append(f"{page.relative_to(ROOT)}:{number}: {name}")
    assert not stale, "options that GptaConfig does not have:\n" + "\n".join(stale)


def _command(words: list[str]) -> tuple[list[click.Command], list[str]]:
    """The commands that ``gpta WORD WORD ...`` names (``cache info|clear``: both), and the
    words that follow them."""
    commands: list[click.Command] = [cli]
    while words and all(isinstance(c, click.Group) for c in commands):
        names = words[0].split("|")
        found = [c.commands[n] for c in commands for n in names if n in c.commands]
        if not found:
            break
        commands, words = found, words[1:]
    return commands, words


def _gpta_lines(text: str) -> list[str]:
    """The ``gpta ...`` command lines of a page: inline code spans and code-block lines, from
    ``gpta`` (or ``-m gpta.cli``) to the end of the span or line."""
    spans = re.findall(r"`([^`\n]+)`", text)
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)
    lines = spans + [line for block in blocks for line in block.splitlines()]
    found = []
    for line in lines:
        line = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        match = re.search(r"(?:^|[\s/])gpta(?:\.cli)? (.*)", line)
        if match:
            found.append(match[1])
    return found


def test_gpta_command_options_named_in_the_pages_exist():
    unknown = []
    seen = 0
    for page in PAGES:
        for line in _gpta_lines(page.read_text()):
            commands, words = _command(line.split())
            if commands == [cli]:
                continue  # `gpta` alone, or a word that is no command (prose)
            if any(c.context_settings.get("ignore_unknown_options") for c in commands):
                continue  # `gpta bench` hands its options to `python -m benchmarks`
            allowed = {
                opt
                for command in commands
                for param in command.params
                for opt in [*param.opts, *param.secondary_opts]
            } | {"--help", "-h"}
            for word in words:
                flag = re.match(r"\[?(--?[a-z][a-z-]*)", word)
                if flag:
                    seen += 1
                    if flag[1] not in allowed:
                        unknown.append(f"{page.relative_to(ROOT)}: gpta {line}: {flag[1]}")
    assert seen > 50  # the pattern still finds the pages' commands
    assert not unknown, "options the gpta commands do not have:\n" + "\n".join(unknown)


def test_generated_references_cover_every_option_and_flag():
    hooks = _hooks()
    reference = hooks.config_reference()
    for name in _options():
        assert f"`{name}`" in reference, name
    for flag, name in TRAIN_FLAGS.items():
        assert f"| `{name}` | `{flag}` |" in reference, flag
    table = hooks.train_flags_table()
    for param in cli.commands["train"].params:
        for opt in param.opts:
            assert f"`{opt}`" in table, opt


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    reference = (site / "config-reference" / "index.html").read_text()
    assert "training.rounds" in reference and "--ta-backend" in reference
    assert "--warm-start-from" in (site / "cli" / "index.html").read_text()
    assert "load_pipeline" in (site / "api" / "index.html").read_text()
    assert (site / "benchmarks" / "index.html").is_file()
