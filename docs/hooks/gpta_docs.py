"""mkdocs hooks (``hooks:`` in mkdocs.yml): the pages generated from the code at build time,
and the repository's own Markdown in the site.

- ``config-reference.md`` is written from :class:`gpta.config.GptaConfig` on every build:
  each option's name, ``gpta train`` flag, type, default, allowed values and description,
  so the page cannot name an option that does not exist or miss one that does.
- ``<!-- gpta:train-flags -->`` in a page becomes the table of ``gpta train``'s options and
  the config option each sets, read from the click command.
- README.md becomes the site's home page and BENCHMARKS.md a page of its own.
- A link that leaves ``docs/`` is checked against the repository: to README.md or
  BENCHMARKS.md it becomes a link to their page; to another file that exists it becomes the
  file's name (the site holds no source files); to a file that does not exist it is a
  warning, which ``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path, PurePosixPath
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# the gpta of this checkout, whatever the environment has installed (mkdocs-click imports it)
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

log = logging.getLogger("mkdocs.hooks.gpta_docs")

#: repository files shown as pages: file -> page
REPO_PAGES = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md"}
CONFIG_PAGE = "config-reference.md"
TRAIN_FLAGS_MARKER = "<!-- gpta:train-flags -->"

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


# --- mkdocs events ------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for source, page in REPO_PAGES.items():
        if files.get_file_from_path(page) is None:
            files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    files.append(File.generated(config, CONFIG_PAGE, content=config_reference()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    src_uri = page.file.src_uri
    # README.md and BENCHMARKS.md link relative to the repository root, the pages to docs/
    from_root = src_uri in REPO_PAGES.values() and page.file.generated_by
    base = ROOT if from_root else (DOCS / src_uri).parent
    if TRAIN_FLAGS_MARKER in markdown:
        markdown = markdown.replace(TRAIN_FLAGS_MARKER, train_flags_table())
    return _outside_code(
        markdown, lambda text: _table_pipes(_lists(_fix_links(text, base, src_uri)))
    )


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    # mkdocs-click 0.9 prints click 8.2+'s "no default" sentinel as it is; its own word
    # for an option without a default is None
    return html.replace("<code>Sentinel.UNSET</code>", "None")


# --- links ----------------------------------------------------------------------------------


def _outside_code(markdown: str, change: Any) -> str:
    """``change`` applied to the text outside fenced code blocks."""
    out, chunk, fenced = [], [], False
    for line in markdown.split("\n"):
        if _FENCE.match(line.lstrip()):
            if not fenced:
                out.append(change("\n".join(chunk)))
                chunk = []
            fenced = not fenced
            out.append(line)
            continue
        (out if fenced else chunk).append(line)
    out.append(change("\n".join(chunk)))
    return "\n".join(out)


def _lists(text: str) -> str:
    """A blank line before a list that follows a paragraph line: GitHub starts the list
    there, Python-Markdown would not (BENCHMARKS.md writes ``Reading:`` then ``- ...``)."""
    return re.sub(r"^(?!\d+\. )([^\s|-].*)\n(?=(?:- |\d+\. ))", r"\1\n\n", text, flags=re.M)


def _table_pipes(text: str) -> str:
    """``\\|`` inside a code span of a table row as ``|``: GitHub needs the escape there,
    Python-Markdown splits no cell inside a code span and would show the backslash."""

    def row(match: re.Match[str]) -> str:
        return re.sub(r"`[^`\n]*`", lambda code: code[0].replace("\\|", "|"), match[0])

    return re.sub(r"^\|.*$", row, text, flags=re.M)


def _fix_links(text: str, base: Path, src_uri: str) -> str:
    page_dir = PurePosixPath(src_uri).parent

    def fix(match: re.Match[str]) -> str:
        label, target = match["text"], match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match[0]  # a URL, an anchor in this page, or an absolute path
        path, _, anchor = target.partition("#")
        resolved = (base / path).resolve()
        try:
            in_repo = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            log.warning(f"{src_uri}: link {target!r} leaves the repository")
            return match[0]
        if in_repo.startswith("docs/"):
            new = in_repo.removeprefix("docs/")
        elif in_repo in REPO_PAGES:
            new = REPO_PAGES[in_repo]
        elif resolved.exists():
            return label if label in (in_repo, path) else f"{label} (`{in_repo}`)"
        else:
            log.warning(f"{src_uri}: link {target!r}: no such file in the repository")
            return match[0]
        new = os.path.relpath(new, page_dir.as_posix() or ".")
        return f"[{label}]({new}{'#' + anchor if anchor else ''})"

    return _LINK.sub(fix, text)


# --- the configuration reference ----------------------------------------------------------


def config_reference() -> str:
    """The Markdown page of every :class:`~gpta.config.GptaConfig` option."""
    from pydantic import BaseModel

    from gpta.cli import TRAIN_FLAGS
    from gpta.config import GptaConfig

    flags = {dotted: flag for flag, dotted in TRAIN_FLAGS.items()}
    lines = [
        "# Configuration reference",
        "",
        "Every option of a run, generated from `gpta.config.GptaConfig` (src/gpta/config.py)",
        "when this site is built, so it lists exactly the options this gpta has. An option is",
        "written in a config file (YAML or TOML) under its section, given on the command line",
        "as `--set section.option=VALUE`, or, where the *flag* column names one, as that",
        "`gpta train` flag (whose help is the description below). Unknown options are errors.",
        "[Configuration](configuration.md) explains the decisions behind the defaults.",
        "",
    ]
    top = {n: f for n, f in GptaConfig.model_fields.items() if not _is_model(f.annotation)}
    lines += ["## Top level", "", *_table(top, "", flags)]
    for name, field in GptaConfig.model_fields.items():
        if name in top:
            continue
        section = field.annotation
        lines += [f"## `{name}`", "", _doc(section), "", *_table(section.model_fields, name, flags)]
        for sub, subfield in section.model_fields.items():
            args = get_args(subfield.annotation)
            if get_origin(subfield.annotation) is dict and _is_model(args[1]):
                model: type[BaseModel] = args[1]
                lines += [f"### `{name}.{sub}.<name>`", "", _doc(model), ""]
                lines += _table(model.model_fields, f"{name}.{sub}.<name>", flags)
    return "\n".join(lines) + "\n"


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _doc(model: type) -> str:
    return " ".join((model.__doc__ or "").split())


def _table(fields: dict[str, Any], prefix: str, flags: dict[str, str]) -> list[str]:
    rows = [
        "| option | flag | type | default | allowed | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, field in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        flag = f"`{flags[dotted]}`" if dotted in flags else ""
        cells = [
            f"`{dotted}`",
            flag,
            type_name(field.annotation),
            default_shown(field),
            allowed(field),
            field.description or "",
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*rows, ""]


def _cell(text: str) -> str:
    """``text`` in a table cell: ``|`` escaped, and ``<`` and ``>`` outside code spans."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def type_name(annotation: Any) -> str:
    """``int or null``, ``list of str``, ``mapping of str to str``, ``text`` for a choice."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return " or ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return "choice"
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    if _is_model(annotation):
        return f"`{annotation.__name__}` (below)"
    return getattr(annotation, "__name__", str(annotation))


def default_shown(field: Any) -> str:
    import json

    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def allowed(field: Any) -> str:
    """The choices of a Literal, or the bounds of a number or a list's length."""
    choices = _choices(field.annotation)
    if choices:
        return ", ".join(f"`{c}`" for c in choices)
    rules: dict[str, Any] = {}
    for rule in field.metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            if getattr(rule, name, None) is not None:
                rules[name] = getattr(rule, name)
    low = (f"> {rules['gt']:,}" if "gt" in rules else None) or (
        f">= {rules['ge']:,}" if "ge" in rules else None
    )
    high = (f"< {rules['lt']:,}" if "lt" in rules else None) or (
        f"<= {rules['le']:,}" if "le" in rules else None
    )
    shown = [s for s in (low, high) if s]
    if "min_length" in rules or "max_length" in rules:
        shown.append(
            f"{rules.get('min_length', 0)} to {rules.get('max_length', 'any number of')} values"
        )
    return ", ".join(shown)


def _choices(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) in (Union, UnionType):
        return [c for a in get_args(annotation) for c in _choices(a)]
    return []


# --- gpta train's flags -----------------------------------------------------------------------


def train_flags_table() -> str:
    """``gpta train``'s options and the config option each sets (the ``[option]`` that ends
    its help), from the click command."""
    import click

    from gpta.cli import cli

    rows = ["| flag | config option |", "| --- | --- |"]
    for param in cli.commands["train"].params:
        if not isinstance(param, click.Option):
            continue
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        if isinstance(param.type, click.Choice):
            names += " " + "\\|".join(str(c) for c in param.type.choices)
        elif param.metavar:
            names += " " + param.metavar.replace("|", "\\|")
        option = re.search(r"\[([^\]]+)\]\s*$", param.help or "")
        shown = f"`{option[1]}`" if option else f"not a config option: {param.help}"
        rows.append(f"| {names} | {_cell(shown)} |")
    return "\n".join(rows)
