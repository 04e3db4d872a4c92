"""The compared methods: every GPTA-side method is one ``gpta.run.train(config)``.

All methods share the training settings (rounds x epochs or steps, batch size, learning rate,
schedule), data sample and seed; they differ only in the prefix policy and, for the issue-10
methods, the classification head and prefix augmentation:

| method | config |
| --- | --- |
| finetune | assistant.initial=empty, assistant.fixed_prefix (no TA loaded) |
| static | assistant.initial=static + static_prefix (the dataset's instruction), fixed_prefix |
| ta-once | the TA's first prefix (round 0), fixed_prefix: no dialogue gradient |
| gpta | the full loop |
| transfer | assistant.warm_start = the partner dataset's gpta run (same level, seed), fixed |
| gpta-tuned | the full loop, the TA with a LoRA adapter tuned on the dialogue-gradient examples |
|  | of this invocation's gpta runs of the same dataset with OTHER seeds (see tuned_adapter) |
| prompt-tuning | PEFT prompt tuning initialised from the description (own loop below) |
| finetune-lm | model.head=lm-verbalizer (+ label_words), no prefix (as finetune) |
| static-lm | lm-verbalizer, the static method's instruction, fixed |
| gpta-lm | lm-verbalizer, the full loop |
| gpta-background | the full loop with assistant.background: the TA answers while a round trains |
| gpta-augment | sequence head, the full loop, training.augment_prefixes=M (profile, 3) |
| gpta-augment-lm | lm-verbalizer, the full loop, training.augment_prefixes=M |
| gpta-lm-words | lm-verbalizer, the full loop, no label words given: the TA proposes them |
|  | (model.propose_label_words=always; opaque-label datasets only) |
| gpta-bundled | the full loop with the bundled TA, where the profile gives the others another |

Two outside anchors train no prefix and run their own code: ``frozen-lr`` (logistic
regression on frozen sentence embeddings) and ``setfit`` (the ``setfit`` package).
The profile's ``ta_backend``/``ta_model`` set the TA of every TA method but gpta-bundled.
"""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.profiles import CARD_METHODS, CLASSIFICATION_ONLY, DATASETS, Profile, setting

GPTA_METHODS = (
    "finetune",
    "static",
    "ta-once",
    "gpta",
    "gpta-background",
    "transfer",
    "gpta-tuned",
    "finetune-lm",
    "static-lm",
    "gpta-lm",
    "gpta-augment",
    "gpta-augment-lm",
    "gpta-lm-words",
    "gpta-bundled",
)
LM_METHODS = ("finetune-lm", "static-lm", "gpta-lm", "gpta-augment-lm", "gpta-lm-words")
AUGMENT_METHODS = ("gpta-augment", "gpta-augment-lm")
# methods that run the full loop (proposals, screening every round), each with its own store
FULL_LOOP = (
    "gpta",
    "gpta-background",
    "gpta-tuned",
    "gpta-lm",
    "gpta-augment",
    "gpta-augment-lm",
    "gpta-lm-words",
    "gpta-bundled",
)


_DEFAULTS = Profile(
    name="defaults",
    datasets=(),
    levels=(),
    seeds=(),
    methods=(),
    rounds=1,
    epochs_per_round=1,
    batch_size=1,
    learning_rate=1.0,
    max_length=16,
    dev_rows=1,
    test_rows=1,
    candidates=1,
    screen_size=4,
    ta_max_new_tokens=8,
)  # only its field defaults are read (augmentation settings when no profile is given)


def ta_choice(profile: Profile) -> tuple[dict[str, Any], str | None]:
    """The profile's TA as ``assistant`` settings, and why it fell back to the bundled TA
    (None when it did not): a ``fetched:`` model that is not in the cache is not fetched here
    (a benchmark never downloads), the bundled TA runs instead and the row says so."""
    if not profile.ta_model:
        return ({"backend": profile.ta_backend} if profile.ta_backend else {}), None
    chosen: dict[str, Any] = {"model": profile.ta_model}
    if profile.ta_backend:
        chosen["backend"] = profile.ta_backend
    if profile.ta_backend == "llamacpp":  # the worker's share of the cores, as torch has it
        import torch

        chosen["threads"] = torch.get_num_threads()
    if profile.ta_model.startswith("fetched:"):
        from gpta.errors import GptaUserError
        from gpta.fetched import resolve_fetched

        try:
            resolve_fetched(profile.ta_model)
        except GptaUserError as err:
            return {}, f"{profile.ta_model} is not fetched ({err}); the bundled TA ran"
    return chosen, None


class NotRun(Exception):
    """A method that cannot run here; the reason goes in results.jsonl (``details`` too)."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.details = details or {}


def base_config(
    profile: Profile,
    dataset: str,
    level: int | None,
    seed: int,
    paths: dict[str, Any],
    output_dir: Path,
) -> dict[str, Any]:
    spec = DATASETS[dataset]
    data = {
        "train": paths["train"],
        "dev": paths["dev"],
        "test": paths["test"],
        "description": spec.description,
        "domain": spec.domain,
        **spec.columns,
    }
    if level is not None:
        data["train_size"] = int(level)
    model: dict[str, Any] = {"max_length": setting(profile, dataset, "max_length")}
    name = profile.summarization_model if spec.task == "summarization" else profile.model
    if name:
        model["name_or_path"] = name
    training: dict[str, Any] = {
        key: setting(profile, dataset, key)
        for key in (
            "rounds",
            "epochs_per_round",
            "batch_size",
            "eval_batch_size",
            "learning_rate",
            "min_steps",
            "min_epochs",
            "patience",
        )
        if setting(profile, dataset, key) is not None  # None: gpta's default
    }
    training["report_to"] = ["none"]
    steps_per_round = setting(profile, dataset, "steps_per_round")
    if steps_per_round is not None:
        training["steps_per_round"] = steps_per_round
    precision = setting(profile, dataset, "mixed_precision")
    if precision != "no":
        training["mixed_precision"] = precision
    return {
        "task": spec.task,
        "output_dir": str(output_dir),
        "seed": seed,
        "device": profile.device,
        "data": data,
        "model": model,
        "training": training,
        "assistant": {
            "candidates": profile.candidates,
            "max_new_tokens": profile.ta_max_new_tokens,
            "max_prefix_tokens": profile.max_prefix_tokens
            or min(48, setting(profile, dataset, "max_length") // 2),
            # every proposal is generated, none replayed: TA time is measured, not cached
            "cache": False,
            # the benchmark must not write into the user's prefix library
            "library": False,
            **ta_choice(profile)[0],
        },
        "selection": {"screen_size": profile.screen_size},
    }


def true_few_shot(
    base: dict[str, Any], dataset: str, level: int, seed: int, out: Path, method: str
) -> dict[str, Any]:
    """``base`` under the true-few-shot protocol (``Profile.true_few_shot``): the run's only
    labelled rows are a seeded sample of ``level`` rows of the pool (stratified by label, as
    ``data.train_size`` samples), written as its training file; no dev file. gpta-side
    methods split their dev rows off it (``data.dev_fraction``), as a user with that file
    would; the outside anchors (frozen-lr, setfit) fit on all of it (their "dev" score is
    then on their training rows)."""
    from gpta.data import read_table, sample_rows

    spec = DATASETS[dataset]
    path = out / "data" / dataset / "fewshot" / f"{level}-seed{seed}.jsonl"
    if not path.is_file():
        pool = read_table(base["data"]["train"])
        column = spec.stratify
        sample = sample_rows(
            pool, level, seed=seed, stratify=pool.column(column) if column else None
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for row in sample.rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)  # two workers may write it: the same rows, atomically
    config = copy.deepcopy(base)
    data = config["data"]
    data["train"] = str(path)
    data.pop("train_size", None)
    data.pop("dev", None)
    if method in ("frozen-lr", "setfit"):
        data["dev"] = str(path)
    return config


def method_config(
    method: str,
    base: dict[str, Any],
    *,
    transfer_from: Path | None = None,
    profile: Profile | None = None,
    adapter: str | None = None,
    store_examples: Path | None = None,
) -> dict[str, Any]:
    """The config dict of ``method`` (a GPTA-side method) from the shared base.

    ``profile`` gives the -lm model and the augmentation settings (defaults: the Profile
    defaults); ``adapter`` is gpta-tuned's TA adapter, ``store_examples`` the examples file
    its dialogue store starts from (both made by :func:`tuned_adapter`).
    """
    config = copy.deepcopy(base)
    assistant = config["assistant"]
    spec = next(d for d in DATASETS.values() if d.description == config["data"]["description"])
    if method in CLASSIFICATION_ONLY and config["task"] != "classification":
        raise NotRun(f"{method} is a classification method (task is {config['task']})")
    if method in LM_METHODS:
        model = config["model"]
        model["head"] = "lm-verbalizer"
        lm_model = profile.lm_model if profile is not None else None
        if lm_model:
            model["name_or_path"] = lm_model
        else:  # the lm-verbalizer default (bundled SmolLM2-135M-Instruct), not the encoder
            model.pop("name_or_path", None)
        if method == "gpta-lm-words":
            if not spec.opaque:
                raise NotRun(f"{spec.name}'s labels are words already: gpta-lm-words is for ids")
            model["propose_label_words"] = "always"  # none given: the TA names them
        elif spec.label_words:
            model["label_words"] = dict(spec.label_words)
    if method in AUGMENT_METHODS:
        settings = profile or _DEFAULTS
        config["training"]["augment_prefixes"] = settings.augment_prefixes
        config["training"]["augment_predict"] = settings.augment_predict
    if method in CARD_METHODS:
        # plain fine-tuning (no prefix, no TA in the loop) plus the card step; the cards are
        # written once per description (cards.seed) and reused from the cache by every
        # level and seed: the row's TA seconds and tokens are those of the cards.json calls
        assistant.update(initial="empty", fixed_prefix=True, cache=True)
        config["cards"] = {"source": "names" if method == "names" else "ta"}
        if method == "cards-dialogue":
            config["cards"]["rounds"] = 1
        if method == "cards-ungated":
            config["cards"].update(weights=[1.0], filter_confident=False)
            config.setdefault("selection", {})["adopt_confidence"] = 0.0
        if method == "cards-bundled":
            for key in ("backend", "model", "threads"):
                assistant.pop(key, None)
    elif method in ("finetune", "finetune-lm"):
        assistant.update(initial="empty", fixed_prefix=True)
    elif method in ("static", "static-lm"):
        assistant.update(initial="static", static_prefix=spec.static_prefix, fixed_prefix=True)
    elif method == "ta-once":
        assistant.update(initial="first", fixed_prefix=True)
    elif method in FULL_LOOP:
        # each run keeps its own dialogue store: seeds and methods stay independent runs
        run_dir = Path(config["output_dir"])
        store = run_dir.parent / f"dialogue-{run_dir.name}"
        assistant["dialogue_store"] = str(store)
        if method == "gpta-background":
            assistant["background"] = True
        if method == "gpta-bundled":  # the default TA, whatever the profile gives the others
            for key in ("backend", "model"):
                assistant.pop(key, None)
        if method == "gpta-tuned":
            if adapter is None:
                raise NotRun("gpta-tuned needs a TA adapter (benchmarks.methods.tuned_adapter)")
            assistant["adapter"] = str(adapter)
            if profile is not None:
                assistant["tune_min_examples"] = profile.tuned_min_examples
            if store_examples is not None:
                # the store starts with the examples the adapter was tuned on, so a tuning
                # inside the run (assistant.tune_every) extends them instead of forgetting them
                shutil.rmtree(store, ignore_errors=True)
                store.mkdir(parents=True)
                shutil.copyfile(store_examples, store / "examples.jsonl")
    elif method == "transfer":
        if transfer_from is None or not (transfer_from / "model").is_dir():
            raise NotRun(
                f"no finished gpta run of the partner dataset ({spec.partner}) to take "
                "its prefix from: run gpta on it in the same invocation"
            )
        assistant.update(warm_start=str(transfer_from), fixed_prefix=True)
    else:
        raise ValueError(method)
    return config


# --- gpta-tuned: the TA adapter of one seed, from the other seeds' gpta runs ---------------
POOL_FILE = "benchmark_pool.json"  # next to an adapter: the keys of the examples it learnt


def tuned_sources(
    out: Path, dataset: str, level: int | None, seed: int, pool: str = "dataset"
) -> list[Path]:
    """Finished ``gpta`` runs of this invocation (``out``) that may teach seed ``seed``'s TA.

    Only OTHER seeds, and only the given dataset; ``pool="level"`` keeps the same level only,
    ``"dataset"`` takes every level. A run counts when it finished (``metrics.json``) and has
    its history (the screened proposals) and ledger (the TA conversations). Their examples
    come from screening on dev rows: the test split never enters a TA conversation or a
    screening.
    """
    if pool not in ("dataset", "level"):
        raise ValueError(f"tuned_pool must be 'dataset' or 'level', not {pool!r}")
    level_name = "full" if level is None else str(level)
    root = out / "runs" / dataset
    levels = [root / level_name] if pool == "level" else sorted(p for p in root.glob("*"))
    found = []
    for level_dir in levels:
        for run_dir in sorted((level_dir / "gpta").glob("seed*")):
            if run_dir.name == f"seed{seed}":
                continue
            needed = ("metrics.json", "history.jsonl", "exposure.jsonl")
            if all((run_dir / name).is_file() for name in needed):
                found.append(run_dir)
    return found


def tuned_adapter(
    profile: Profile, out: Path, dataset: str, level: int | None, seed: int, base: dict[str, Any]
) -> dict[str, Any]:
    """Tune (or reuse) the TA adapter of ``seed``: LoRA on the other seeds' examples.

    Returns ``{"adapter": dir or None, "examples_file", "examples", "sources", "needed",
    "seconds", "reused", "loss_before", "loss_after", "steps"}``. ``adapter`` is None when the
    pool holds fewer than ``profile.tuned_min_examples`` examples. One adapter per
    (dataset, excluded seed, pool): with ``tuned_pool="dataset"`` the levels of a seed share it.
    """
    from gpta.assistant.dialogue import DialogueStore, examples_from_run
    from gpta.assistant.tuning import adapter_meta, settings_from_config, tune_lora
    from gpta.config import build_config

    sources = tuned_sources(out, dataset, level, seed, profile.tuned_pool)
    tag = "all-levels" if profile.tuned_pool == "dataset" else f"level-{level}"
    store = DialogueStore(out / "tuned" / dataset / tag / f"without-seed{seed}")
    examples: dict[str, Any] = {}
    for run_dir in sources:
        for example in examples_from_run(run_dir):
            examples.setdefault(example.key, example)
    info: dict[str, Any] = {
        "adapter": None,
        "examples": len(examples),
        "needed": profile.tuned_min_examples,
        "pool": profile.tuned_pool,
        "sources": [str(p.relative_to(out)) for p in sources],
        "examples_file": None,
        "seconds": 0.0,
        "reused": False,
    }
    if len(examples) < profile.tuned_min_examples:
        return info
    # a fresh examples file: exactly the pool's examples, nothing left from an older run
    store.root.mkdir(parents=True, exist_ok=True)
    store.examples_path.unlink(missing_ok=True)
    store.add(examples.values())
    info["examples_file"] = str(store.examples_path)
    keys = sorted(examples)
    latest = store.latest_adapter()
    pool_file = latest / POOL_FILE if latest is not None else None
    learnt = json.loads(pool_file.read_text()) if pool_file and pool_file.is_file() else {}
    if learnt.get("keys") == keys:  # the same examples: the same adapter
        info.update(adapter=str(latest), reused=True)
        _loss_info(info, adapter_meta(latest))
        return info
    assistant = build_config(base, source="benchmark").assistant
    started = time.perf_counter()
    result = tune_lora(
        list(examples.values()),
        base_model=assistant.model,
        out_dir=store.next_adapter_dir(),
        settings=settings_from_config(assistant),
        seed=seed,
        device="cuda" if profile.device == "cuda" else "cpu",
    )
    info.update(adapter=result.adapter_dir, seconds=round(time.perf_counter() - started, 2))
    (Path(result.adapter_dir) / POOL_FILE).write_text(
        json.dumps({"keys": keys, "sources": info["sources"]}, indent=1) + "\n", encoding="utf-8"
    )
    _loss_info(info, {**result.__dict__})
    return info


def _loss_info(info: dict[str, Any], meta: dict[str, Any]) -> None:
    for key in ("loss_before", "loss_after", "steps"):
        info[key] = meta.get(key)


def run_gpta_method(config_dict: dict[str, Any]) -> dict[str, Any]:
    """One ``gpta.run.train``; returns the fields of a results.jsonl line."""
    from gpta.config import build_config
    from gpta.run import train

    config = build_config(config_dict, source="benchmark")
    cuda = _cuda_reset()
    started = time.perf_counter()
    result = train(config, overwrite=True, quiet=True)
    outer = time.perf_counter() - started
    run_dir = result.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    rounds = metrics["rounds"]
    split = {"train": 0.0, "eval": 0.0, "ta": 0.0, "screen": 0.0}
    for r in rounds:
        for key in split:
            split[key] += float(r["seconds"].get(key, 0.0))
    # round 0's proposal happens before training: it is in ta_seconds, not in rounds[]
    split["ta"] = float(metrics.get("ta_seconds", split["ta"]))
    metric = metrics["primary_metric"]
    budget = metrics.get("budget") or {}
    words = _label_words_event(run_dir / "history.jsonl")
    cards = _cards_fields(run_dir)
    # the card requests are made before training, outside the loop's TA seconds (cached after
    # the first run that wrote them: only uncached calls count)
    split["ta"] += cards.get("card_ta_seconds", 0.0)
    return {
        **cards,
        "label_words": words.get("chosen"),
        "label_words_source": words.get("source"),
        "optimizer_steps": budget.get("total_steps"),
        "rounds_trained": metrics.get("rounds_trained"),
        "majority": (metrics.get("majority_baseline") or {}).get("test"),
        "metric": metric,
        "test": metrics["test"].get(metric),
        "dev": metrics["dev"].get(metric),
        "test_metrics": metrics["test"],
        "dev_curve": [r["dev_score"] for r in rounds],
        "dev_loss_curve": [r["dev_loss"] for r in rounds],
        "train_loss_curve": [r["train_loss"] for r in rounds],
        "prefix": metrics["prefix"],
        "prefixes": [r["prefix"] for r in rounds],
        "best_round": metrics["best_round"],
        "wall_seconds": round(outer, 2),
        "run_wall_seconds": metrics["wall_seconds"],
        "seconds": {k: round(v, 2) for k, v in split.items()},
        "ta_requests": metrics.get("ta_requests", 0),
        "ta_tokens": int(metrics.get("ta_prompt_tokens", 0))
        + int(metrics.get("ta_completion_tokens", 0)),
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "peak_cuda_mb": _cuda_peak(cuda),
        "run_dir": str(run_dir),
        "head": config.model.head,
        "model": config.model.resolved_name(config.task),
        "augment_prefixes": config.training.augment_prefixes,
        "steps_per_round": config.training.steps_per_round,
        "batch_size": config.training.batch_size,
        "mixed_precision": config.training.mixed_precision,
        "ta_adapter": config.assistant.adapter,
        "ta_improvement": metrics.get("ta_improvement"),
    }


def _cards_fields(run_dir: Path) -> dict[str, Any]:
    """What the run's card step did (cards.json), for results.jsonl; {} without one."""
    path = run_dir / "cards.json"
    if not path.is_file():
        return {}
    record = json.loads(path.read_text(encoding="utf-8"))
    calls = record.get("calls", [])
    return {
        "cards_chosen": record["chosen"]["name"],
        "cards_weight": record["chosen"]["weight"],
        "cards_counts": record["chosen"]["counts"],
        "cards_selection": record["selection"],
        "cards_candidates": record["candidates"],
        "cards_baseline": record["baseline"],
        "cards_intended_share": record.get("intended_class_share"),
        "cards_seconds": record.get("seconds"),
        "card_calls": len(calls),
        "card_calls_cached": sum(bool(c.get("cached")) for c in calls),
        # the TA's work for the cards: seconds and tokens of the calls that were not cached
        "card_ta_seconds": round(sum(c.get("seconds", 0) for c in calls if not c.get("cached")), 2),
        "card_ta_tokens": sum(
            int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0) for c in calls
        ),
        "cards_sample": {
            card["label"]: [e["text"] for e in card["examples"] if e["dropped"] is None][:2]
            for card in (record["sets"][-1]["cards"] if record.get("sets") else [])
        },
    }


def _label_words_event(history: Path) -> dict[str, Any]:
    """The run's label-word choice (gpta.assistant.label_words' history event), or {}."""
    from gpta.assistant.label_words import EVENT

    if not history.is_file():
        return {}
    for line in history.read_text(encoding="utf-8").splitlines():
        event = json.loads(line) if line.strip() else {}
        if event.get("event") == EVENT:
            return event
    return {}


def _cuda_reset() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return True
    return False


def _cuda_peak(active: bool) -> float | None:
    if not active:
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# --- frozen embeddings + logistic regression, the outside anchor --------------------------------
def run_frozen_lr(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Logistic regression (scikit-learn defaults, max_iter 1000) on the frozen sentence
    embeddings of the same model (sentence-transformers' own encode: its pooling and
    normalisation) of the same first ``max_length`` tokens every method reads, fitted on the
    same training sample; scored on dev and test. No prefix, no fine-tuning. Classification
    only."""
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    from gpta.bundled import resolve_model_path
    from gpta.modeling.device import resolve_device

    config, tables, task, started = _anchor_setup(config_dict, "frozen-lr")
    name = config.model.resolved_name(config.task)
    encoder = SentenceTransformer(resolve_model_path(name), device=resolve_device(config.device))
    encoder.max_seq_length = config.model.max_length  # the tokens every other method reads

    def features(split: str) -> Any:
        texts = [r[task.text_column] for r in tables[split].rows]
        return encoder.encode(texts, batch_size=64, show_progress_bar=False)

    probe = LogisticRegression(max_iter=1000).fit(
        features("train"), task.label_ids(tables["train"])
    )
    return _anchor_result(
        task, tables, lambda split: probe.predict(features(split)).tolist(), started, name
    )


def _anchor_setup(config_dict: dict[str, Any], method: str) -> tuple[Any, Any, Any, float]:
    """An outside anchor's config, data tables, task and start time (classification only)."""
    from gpta.config import build_config
    from gpta.run import load_data
    from gpta.tasks import build_task

    config = build_config(config_dict, source="benchmark")
    if config.task != "classification":
        raise NotRun(f"{method} is a classification method (task is {config.task})")
    started = time.perf_counter()
    tables = load_data(config)
    return config, tables, build_task(config, tables), started


def _anchor_result(
    task: Any,
    tables: dict[str, Any],
    predict: Any,
    started: float,
    model: str,
    seconds: dict[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The results row of an outside anchor (no prefix, no rounds): ``predict(split)`` gives
    the class ids of a split's rows; scored on dev and test, with the majority baseline."""
    scores = {
        split: task.metrics(predict(split), task.label_ids(tables[split]))
        for split in ("dev", "test")
    }
    majority = task.majority_baseline(tables["train"].rows, {"test": tables["test"].rows})
    return {
        "metric": "accuracy",
        "test": scores["test"]["accuracy"],
        "dev": scores["dev"]["accuracy"],
        "test_metrics": scores["test"],
        "dev_curve": None,
        "prefix": "",
        "prefixes": None,
        "best_round": None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "seconds": seconds or {"train": 0.0, "eval": 0.0, "ta": 0.0, "screen": 0.0},
        "ta_requests": 0,
        "ta_tokens": 0,
        "majority": majority["test"] if majority else None,
        "model": model,
        "run_dir": None,
        **extra,
    }


# --- SetFit, the few-shot anchor a user would pick instead ---------------------------------
def run_setfit(config_dict: dict[str, Any], *, steps: str = "budget") -> dict[str, Any]:
    """SetFit (the ``setfit`` package) on the same sentence-transformers body with its
    default recipe (contrastive pairs by oversampling, batch 16, the body at 2e-5, then
    logistic regression on the tuned embeddings), fitted on the same training sample with the
    run's seed, reading the same first ``max_length`` tokens as every method (the body's own
    limit, 256, is not used); scored on dev and test. No prefix. Classification only.

    ``steps="budget"`` stops the body after as many optimizer steps as the gpta-side methods
    take (``round_budget``: same sample, steps and seed); ``"recipe"`` runs setfit's own
    count, one pass over its pairs (64 rows make ~2,500 pairs, 256 rows ~40,000)."""
    try:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments
    except ImportError as err:
        raise NotRun(f"setfit is not installed ({err}): pip install setfit") from err

    from transformers.utils import logging as hf_logging

    from gpta.bundled import resolve_model_path
    from gpta.downstream.training import round_budget
    from gpta.modeling.device import resolve_device

    if steps not in ("budget", "recipe"):
        raise ValueError(f"setfit steps must be 'budget' or 'recipe', not {steps!r}")
    config, tables, task, started = _anchor_setup(config_dict, "setfit")
    name = config.model.resolved_name(config.task)
    model = SetFitModel.from_pretrained(
        resolve_model_path(name), device=resolve_device(config.device)
    )
    # the tokens every other method reads (the body's own limit is 256; setfit's max_length
    # argument reaches only its end-to-end head, not the contrastive steps or predict)
    model.model_body.max_seq_length = config.model.max_length
    train = tables["train"]
    texts = [r[task.text_column] for r in train.rows]
    budget = round_budget(config.training, len(train))
    max_steps = budget.total_steps if steps == "budget" else None
    args = TrainingArguments(
        output_dir=str(Path(config.output_dir) / "setfit"),
        seed=config.seed,
        max_steps=max_steps if max_steps is not None else -1,
        max_length=config.model.max_length,
        show_progress_bar=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
    )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the inner Trainer's progress bar follows the verbosity
    try:
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict({"text": texts, "label": task.label_ids(train)}),
        )
        tick = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - tick
    finally:
        hf_logging.set_verbosity(verbosity)
    tick = time.perf_counter()

    def predict(split: str) -> list[int]:
        texts = [r[task.text_column] for r in tables[split].rows]
        return [int(p) for p in model.predict(texts, batch_size=64).tolist()]

    predicted = {split: predict(split) for split in ("dev", "test")}
    seconds = {
        "train": round(train_seconds, 2),
        "eval": round(time.perf_counter() - tick, 2),
        "ta": 0.0,
        "screen": 0.0,
    }
    return _anchor_result(
        task,
        tables,
        predicted.__getitem__,
        started,
        name,
        seconds,
        optimizer_steps=math.ceil(
            len(trainer.st_trainer.train_dataset) / args.embedding_batch_size
        ),
        setfit_steps=steps,
    )


# --- prompt tuning (PEFT), the outside anchor ------------------------------------------------
def run_prompt_tuning(config_dict: dict[str, Any], *, learning_rate: float) -> dict[str, Any]:
    """PEFT prompt tuning of the same model, initialised from the dataset description.

    Same data sample, seed, batch size, rounds and optimizer steps as the GPTA-side methods:
    a round is ``epochs_per_round`` passes over the rows or, with ``steps_per_round``, that
    many batches from the same moving window of rows the Trainer path uses (``RoundDataset``);
    bf16 / fp16 autocast as ``training.mixed_precision`` says. The encoder is frozen, the
    virtual tokens and the classifier head train (PEFT's SEQ_CLS default), at
    ``learning_rate`` (prompt tuning needs a far larger rate than full fine-tuning). Dev is
    scored after every round; the best round's weights are scored on test. Classification
    only.
    """
    import torch
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        get_linear_schedule_with_warmup,
        set_seed,
    )

    from gpta.bundled import resolve_model_path
    from gpta.config import build_config
    from gpta.downstream.training import RoundDataset, round_budget
    from gpta.modeling.device import resolve_device
    from gpta.modeling.loading import load_pretrained
    from gpta.run import load_data
    from gpta.tasks import build_task

    config = build_config(config_dict, source="benchmark")
    if config.task != "classification":
        raise NotRun(f"prompt-tuning is wired for classification only (not {config.task})")
    started = time.perf_counter()
    cuda = _cuda_reset()
    tables = load_data(config)
    task = build_task(config, tables)
    device = resolve_device(config.device)
    set_seed(config.seed)
    name = config.model.resolved_name(config.task)
    # PEFT's SEQ_CLS recipe on the plain Hugging Face classifier (not gpta's pooled head)
    model, tokenizer = load_pretrained(
        AutoModelForSequenceClassification,
        name,
        num_labels=len(task.labels),
        ignore_mismatched_sizes=True,
    )
    description = config.description_text()
    init_ids = tokenizer(description, add_special_tokens=False)["input_ids"]
    peft_config = PromptTuningConfig(
        task_type=TaskType.SEQ_CLS,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=description,
        num_virtual_tokens=len(init_ids),
        tokenizer_name_or_path=str(resolve_model_path(name)),
    )
    model = get_peft_model(model, peft_config).to(device)
    training = config.training
    batch = training.batch_size
    budget = round_budget(training, len(tables["train"]))  # the Trainer path's rounds
    rounds_data = RoundDataset(
        tables["train"].rows,
        epochs_per_round=budget.epochs_per_round,
        rows_per_round=budget.rows_per_round,
    )
    steps = training.rounds * math.ceil(len(rounds_data) / batch)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    precision = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(training.mixed_precision)
    device_type = device.split(":")[0]
    scaler = torch.amp.GradScaler(device_type, enabled=precision is torch.float16)
    generator = torch.Generator().manual_seed(config.seed)
    curve, losses, train_seconds, eval_seconds = [], [], 0.0, 0.0
    best_state, best_key = None, None
    optimizer_steps = 0
    for round_index in range(training.rounds):
        model.train()
        tick = time.perf_counter()
        rounds_data.set_round(round_index)
        order = torch.randperm(len(rounds_data), generator=generator).tolist()
        round_loss = []
        for start in range(0, len(order), batch):
            rows = [rounds_data[i] for i in order[start : start + batch]]
            inputs = {k: v.to(device) for k, v in task.collate(rows, tokenizer, "").items()}
            with torch.autocast(device_type, dtype=precision, enabled=precision is not None):
                loss = model(**inputs).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            optimizer.zero_grad()
            optimizer_steps += 1
            round_loss.append(float(loss.detach()))
        train_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        dev = task.evaluate(model, tokenizer, tables["dev"].rows, "", batch_size=64)
        eval_seconds += time.perf_counter() - tick
        curve.append(dev.score)
        losses.append(sum(round_loss) / max(1, len(round_loss)))
        key = (dev.score, -(dev.loss or 0.0))
        if best_key is None or key > best_key:
            best_key = key
            best_state = {
                k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
            }
    assert best_state is not None
    with torch.no_grad():
        for k, v in model.named_parameters():
            if k in best_state:
                v.copy_(best_state[k])
    tick = time.perf_counter()
    dev = task.evaluate(model, tokenizer, tables["dev"].rows, "", batch_size=64)
    test = task.evaluate(model, tokenizer, tables["test"].rows, "", batch_size=64)
    eval_seconds += time.perf_counter() - tick
    metric = task.primary_metric
    return {
        "metric": metric,
        "test": test.metrics.get(metric),
        "dev": dev.metrics.get(metric),
        "test_metrics": test.metrics,
        "dev_curve": curve,
        "dev_loss_curve": None,
        "train_loss_curve": losses,
        "prefix": f"<{len(init_ids)} virtual tokens>",
        "prefixes": None,
        "best_round": curve.index(best_key[0]) if best_key else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "run_wall_seconds": None,
        "seconds": {
            "train": round(train_seconds, 2),
            "eval": round(eval_seconds, 2),
            "ta": 0.0,
            "screen": 0.0,
        },
        "ta_requests": 0,
        "ta_tokens": 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mb": _cuda_peak(cuda),
        "run_dir": None,
        "prompt_tuning_lr": learning_rate,
        "optimizer_steps": optimizer_steps,
        "mixed_precision": training.mixed_precision,
    }
