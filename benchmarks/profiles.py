"""The six benchmark datasets and the run profiles (smoke, cpu, gpu).

Datasets are read from ``../shared/data/<name>/{train,test}.jsonl`` (``GPTA_BENCH_DATA``
names another folder). Splits, the same for every method, level and seed of an invocation:

- test: the first ``test_rows`` rows of the given ``test.jsonl`` (its order is already a
  seeded random sample), all of them when ``test_rows`` is None;
- dev: ``dev_rows`` rows drawn from ``train.jsonl`` with ``random.Random(0)``;
- train pool: the other training rows. A level (e.g. 64 rows) is drawn from the pool by
  ``data.train_size`` with the run's seed (stratified by label for classification), so the
  seeds differ in their training sample as well as in their initialisation.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gpta.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GPTA_BENCH_DATA", ROOT.parent / "shared" / "data"))

ALL_METHODS = (
    "frozen-lr",
    "setfit",
    "finetune",
    "static",
    "ta-once",
    "gpta",
    "gpta-background",
    "gpta-tuned",
    "prompt-tuning",
    "transfer",
    # issue 10: other heads and prefix augmentation (classification only)
    "finetune-lm",
    "static-lm",
    "gpta-lm",
    "gpta-augment",
    "gpta-augment-lm",
    # issue 19: the TA also names the label words (opaque labels); the full loop with the
    # bundled TA where a profile gives the others a stronger one
    "gpta-lm-words",
    "gpta-bundled",
    # issue 27: teaching with examples. names: the label names templated into rows (no TA,
    # the control); cards: the TA's class cards; cards-dialogue: with one feedback round;
    # cards-bundled: the cards of the bundled TA. Each adopted only by cross-validation.
    "names",
    "cards",
    "cards-dialogue",
    "cards-bundled",
    # the gate's cost: the TA's cards at w = 1 whenever the proxy's cross-validated accuracy
    # rises, with no paired test (selection.adopt_confidence 0): a measurement arm, not a
    # product setting
    "cards-ungated",
)
# issue 27: the methods that use no TA at all (the "best no-TA method" of the cards table)
NO_TA_BASELINES = ("frozen-lr", "setfit", "finetune", "names")
CARD_METHODS = ("names", "cards", "cards-dialogue", "cards-bundled", "cards-ungated")
# the methods that use no prefix at all: the "best no-prefix baseline" of the table
NO_PREFIX_BASELINES = ("frozen-lr", "setfit", "finetune", "finetune-lm")
# methods that read neither the label names nor the description: on an -ids variant they
# would repeat the run of the dataset it comes from (same rows, same seed), whose rows the
# table borrows for its comparisons
LABEL_AGNOSTIC = ("frozen-lr", "setfit", "finetune")
# methods that need a classification task (a head or prefix augmentation)
CLASSIFICATION_ONLY = (
    *CARD_METHODS,
    "frozen-lr",
    "setfit",
    "gpta-lm-words",
    "prompt-tuning",
    "finetune-lm",
    "static-lm",
    "gpta-lm",
    "gpta-augment",
    "gpta-augment-lm",
)


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str
    domain: str
    partner: str  # the other dataset of the same domain (for `transfer`)
    description: str  # what the TA reads
    static_prefix: str  # the fixed human-written instruction of `static`
    columns: dict[str, str] = field(default_factory=dict)  # data.* column options
    stratify: str | None = None
    # model.label_words of the lm-verbalizer methods ({label: words}); None = the label names
    label_words: dict[str, str] | None = None
    # issue 19's opaque-label variants: the data folder read (default: the name), the labels
    # rewritten on the way in ({given: written}), and whether the labels are opaque ids (the
    # TA may then name the label words: gpta-lm-words)
    source: str | None = None
    label_map: dict[str, str] | None = None
    opaque: bool = False


DATASETS: dict[str, Dataset] = {
    "yelp": Dataset(
        "yelp",
        "classification",
        "sentiment",
        "twitter",
        "Yelp reviews of restaurants and local businesses written by customers. Each review is "
        "labelled with the star rating its author gave: 0 = 1 star, 1 = 2 stars, 2 = 3 stars, "
        "3 = 4 stars, 4 = 5 stars.",
        "Rate this business review from 1 to 5 stars:",
        {"text_column": "text", "label_column": "label"},
        stratify="label",
        # labels 0..4 = 1..5 stars; one SmolLM2 token each (" terrible" ... " great")
        label_words={"0": "terrible", "1": "bad", "2": "okay", "3": "good", "4": "great"},
    ),
    "twitter": Dataset(
        "twitter",
        "classification",
        "sentiment",
        "yelp",
        "English tweets from the SemEval-2017 sentiment task, each labelled with the overall "
        "sentiment of the message: negative, neutral or positive.",
        "Is the sentiment of this tweet negative, neutral or positive?",
        {"text_column": "text", "label_column": "label"},
        stratify="label",
        # the label names themselves, one SmolLM2 token each
        label_words={"negative": "negative", "neutral": "neutral", "positive": "positive"},
    ),
    # issue 19: the labels as ids the description explains. yelp as shipped is already that
    # (0-4 = 1-5 stars); its -lm methods get the ids as label words instead of ours.
    "yelp-ids": Dataset(
        "yelp-ids",
        "classification",
        "sentiment",
        "twitter-ids",
        "Yelp reviews of restaurants and local businesses written by customers. Each review is "
        "labelled with an id for the star rating its author gave: 0 = 1 star, 1 = 2 stars, "
        "2 = 3 stars, 3 = 4 stars, 4 = 5 stars.",
        "Rate this business review from 1 to 5 stars, answering with its id: 0 = 1 star, "
        "1 = 2 stars, 2 = 3 stars, 3 = 4 stars, 4 = 5 stars.",
        {"text_column": "text", "label_column": "label"},
        stratify="label",
        label_words={str(i): str(i) for i in range(5)},  # the ids themselves: nothing added
        source="yelp",
        opaque=True,
    ),
    # issue 27: yelp with label names, for the "yelp" of the cards issue (yelp as shipped,
    # ids 0-4, is its "yelp with its ids"): the names a user would give the star ratings
    "yelp-stars": Dataset(
        "yelp-stars",
        "classification",
        "sentiment",
        "twitter",
        "Yelp reviews of restaurants and local businesses written by customers. Each review is "
        "labelled with the star rating its author gave: 1 star, 2 stars, 3 stars, 4 stars or "
        "5 stars.",
        "Rate this business review from 1 to 5 stars:",
        {"text_column": "text", "label_column": "label"},
        stratify="label",
        label_words={
            "1 star": "terrible",
            "2 stars": "bad",
            "3 stars": "okay",
            "4 stars": "good",
            "5 stars": "great",
        },
        source="yelp",
        label_map={str(i): f"{i + 1} star" + ("s" if i else "") for i in range(5)},
    ),
    "twitter-ids": Dataset(
        "twitter-ids",
        "classification",
        "sentiment",
        "yelp-ids",
        "English tweets from the SemEval-2017 sentiment task, each labelled with the overall "
        "sentiment of the message as an id: 0 = negative, 1 = neutral, 2 = positive.",
        "Give the sentiment of this tweet as an id: 0 = negative, 1 = neutral, 2 = positive.",
        {"text_column": "text", "label_column": "label"},
        stratify="label",
        label_words={"0": "0", "1": "1", "2": "2"},
        source="twitter",
        label_map={"negative": "0", "neutral": "1", "positive": "2"},
        opaque=True,
    ),
    "squad": Dataset(
        "squad",
        "qa",
        "reading",
        "race",
        "SQuAD: questions written by crowdworkers about Wikipedia paragraphs; the answer to "
        "each question is a span of the paragraph.",
        "Answer with the exact words of the passage:",
        {"text_column": "context", "label_column": "answers"},
    ),
    "race": Dataset(
        "race",
        "multiple_choice",
        "reading",
        "squad",
        "RACE: English reading-comprehension exams for Chinese middle and high school "
        "students. Each question about a passage has four options, one of them correct.",
        "Choose the option that the passage supports:",
        {"text_column": "article", "label_column": "answer"},
    ),
    "cnndm": Dataset(
        "cnndm",
        "summarization",
        "news",
        "xsum",
        "CNN and Daily Mail news articles; each summary is the article's few bullet-point "
        "highlights written by the journalists.",
        "Summarize the news article in three short highlights:",
        {"text_column": "article", "label_column": "highlights"},
    ),
    "xsum": Dataset(
        "xsum",
        "summarization",
        "news",
        "cnndm",
        "BBC news articles; each summary is the single introductory sentence that tells what "
        "the article is about.",
        "Summarize the article in one sentence:",
        {"text_column": "document", "label_column": "summary"},
    ),
}


@dataclass(frozen=True)
class Profile:
    name: str
    datasets: tuple[str, ...]
    levels: tuple[int | None, ...]  # training rows; None = the whole pool
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    rounds: int
    epochs_per_round: int | None  # None (and no steps_per_round): gpta's default budget rule
    batch_size: int
    learning_rate: float
    max_length: int
    dev_rows: int
    test_rows: int | None
    candidates: int
    screen_size: int
    ta_max_new_tokens: int
    device: str = "cpu"
    model: str | None = None  # None: the task's default
    summarization_model: str | None = None
    prompt_tuning_lr: float = 1e-2
    efficiency: bool = True  # also measure the efficiency ratios
    efficiency_rows: int = 256  # rows for the throughput comparison
    steps_per_round: int | None = None  # a round = this many batches instead of epochs
    min_steps: int | None = None  # training.min_steps / min_epochs / patience; None: gpta's
    min_epochs: float | None = None
    patience: int | None = None
    max_prefix_tokens: int | None = None  # assistant.max_prefix_tokens; None: min(48, len/2)
    eval_batch_size: int = 64
    mixed_precision: str = "no"  # training.mixed_precision: no | fp16 | bf16
    lm_model: str | None = None  # model of the -lm methods; None: the lm-verbalizer default
    augment_prefixes: int = 3  # training.augment_prefixes of the gpta-augment methods
    augment_predict: str = "final"  # training.augment_predict of the gpta-augment methods
    # gpta-tuned: which gpta runs of this invocation feed the TA's adapter for seed s
    tuned_pool: str = "dataset"  # "dataset": other seeds, any level; "level": same level only
    tuned_min_examples: int = 4  # fewer dialogue-gradient examples: no adapter
    tuned_fallback: str = "skip"  # too few: "skip" (row not_run) or "untuned" (marked row)
    screening_candidates: int = 4  # the screen x K vs screen_many figure
    screening_rows: int = 64
    # the TA of the TA methods (gpta-bundled keeps the bundled one); None: gpta's default.
    # A fetched: model that is not in the cache falls back to the bundled TA (the row says so)
    ta_backend: str | None = None
    ta_model: str | None = None
    # setfit's body steps: "budget" = the finetune run's optimizer steps (same steps for every
    # method), "recipe" = setfit's own (its pair count grows with the square of the rows)
    setfit_steps: str = "budget"
    # runs side by side in worker processes (cores / workers torch threads each); the second
    # pass (transfer, gpta-tuned) starts when the first is done
    workers: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # per dataset: {name: {key: value}}
    # issue 27's protocol: every method of a run sees exactly the ``level`` labelled rows
    # (a seeded stratified sample of the pool written as the run's only training file);
    # gpta-side methods split their dev rows off those, as a user with that file would
    # (data.dev_fraction); the outside anchors fit on all of them. No dev file is read.
    true_few_shot: bool = False
    # per method: where it runs ({"datasets": (...), "levels": (...), "seeds": (...)}, each
    # default all) and training settings of its own ({"training": {key: value}}): the cuts a
    # profile makes to fit its time (the study's slow LM methods)
    scopes: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Profile:
        return replace(self, **changes)

    def without_override(self, key: str) -> Profile:
        """This profile with no per-dataset value of ``key`` (a command-line value wins)."""
        overrides = {d: {k: v for k, v in o.items() if k != key} for d, o in self.overrides.items()}
        return replace(self, overrides=overrides)


_DEFAULT_TRAINING = TrainingConfig()  # gpta's defaults, read where a profile uses them
# the study's LM methods: 64 rows, 40 optimizer steps of 8 rows (see the study profile)
_STUDY_LM: dict[str, Any] = {"levels": (64,), "training": {"batch_size": 8, "min_steps": 40}}

PROFILES: dict[str, Profile] = {
    # about a minute on 2 cores: the only part CI runs
    "smoke": Profile(
        name="smoke",
        datasets=("twitter",),
        levels=(32,),
        seeds=(0,),
        methods=("finetune", "gpta"),
        rounds=2,
        epochs_per_round=1,
        batch_size=16,
        learning_rate=5e-5,
        max_length=64,
        dev_rows=24,
        test_rows=24,
        candidates=2,
        screen_size=8,
        ta_max_new_tokens=24,
        efficiency=True,
        efficiency_rows=32,
        screening_rows=32,
    ),
    # issue 17: gpta's own defaults (the default budget rule max(min_steps, min_epochs epochs)
    # over 5 rounds, early stopping, warm-up round, paired adoption, prefix mixing, the
    # prefix-or-none choice; the pooled MiniLM head with a linear-probe start) against the
    # frozen-embedding anchor, on 2 CPU cores. bf16 autocast for every method (a CPU speed
    # setting, not a default), two runs side by side with one thread each. 5 seeds for the
    # classification sets, 3 for squad. See BENCHMARKS.md for its time.
    "cpu": Profile(
        name="cpu",
        datasets=("twitter", "yelp", "squad"),
        levels=(64, 256),
        seeds=(0, 1, 2, 3, 4),
        methods=("frozen-lr", "finetune", "static", "ta-once", "gpta"),
        rounds=_DEFAULT_TRAINING.rounds,
        epochs_per_round=None,
        batch_size=_DEFAULT_TRAINING.batch_size,
        mixed_precision="bf16",
        learning_rate=_DEFAULT_TRAINING.learning_rate,
        max_length=128,
        dev_rows=64,
        test_rows=200,
        candidates=3,
        screen_size=64,  # every dev row: the paired adoption test needs the rows
        ta_max_new_tokens=40,
        efficiency_rows=128,
        workers=2,
        overrides={
            "squad": {
                "max_length": 256,
                "dev_rows": 48,
                "test_rows": 100,
                "levels": (64,),
                "seeds": (0, 1, 2),
            }
        },
    ),
    # issue 19: where a prefix can carry information. The outside anchors (frozen-lr, setfit),
    # plain fine-tuning, SmolLM2 label words (finetune-lm: the dataset's words; the -ids
    # variants' words are the ids), a human instruction (static-lm), the full loop with the
    # stronger TA (Qwen2.5-Coder-1.5B by llama.cpp, `gpta models fetch qwen2.5-coder-1.5b`)
    # on both heads, the TA naming the label words (gpta-lm-words, the -ids variants), and the
    # full loop with the bundled TA. gpta's default budget everywhere but in the LM scope.
    # What is cut to fit 90 minutes on 2 idle cores (BENCHMARKS.md gives the measured time):
    # - the encoder methods run on twitter and yelp only: a classifier head never reads the
    #   label names, so the -ids variants would repeat their runs (gpta's TA would read a
    #   description that differs in the label sentence alone);
    # - the two TA methods of the encoder head run at 64 rows only;
    # - setfit runs at 64 rows only (the level gpta runs at, where it is the best no-prefix
    #   anchor on yelp); at 32 and 256 rows it is cut (its pair steps in fp32 are the slowest
    #   MiniLM runs: ~130 s a twitter run, ~300 s a yelp run);
    # - SmolLM2 (135M) steps cost ~25x a MiniLM step here: the LM methods run at 64 rows only,
    #   with their own budget (40 steps of 8 rows), on twitter-ids (finetune-lm on twitter
    #   too: the human label words, against the ids as words); yelp's id variant (yelp-ids)
    #   is left out (yelp's own labels are ids already).
    "study": Profile(
        name="study",
        datasets=("twitter", "twitter-ids", "yelp"),
        levels=(32, 64, 256),
        seeds=(0, 1, 2, 3, 4),
        methods=(
            "frozen-lr",
            "setfit",
            "finetune",
            "finetune-lm",
            "static-lm",
            "gpta",
            "gpta-lm",
            "gpta-lm-words",
            "gpta-bundled",
        ),
        rounds=_DEFAULT_TRAINING.rounds,
        epochs_per_round=None,
        batch_size=_DEFAULT_TRAINING.batch_size,
        learning_rate=_DEFAULT_TRAINING.learning_rate,
        mixed_precision="bf16",
        max_length=96,
        max_prefix_tokens=24,  # SmolLM2's chat frame takes 30 of the 96 tokens
        dev_rows=64,
        test_rows=200,
        candidates=3,
        screen_size=64,
        ta_max_new_tokens=64,  # the JSON answer, with label words for gpta-lm-words
        ta_backend="llamacpp",
        ta_model="fetched:qwen2.5-coder-1.5b",
        efficiency=False,
        workers=2,
        scopes={
            **{m: {"datasets": ("twitter", "yelp")} for m in ("frozen-lr", "finetune")},
            # setfit at 64 rows only: 32 rows (measured, kept in results/study/cut_setfit_32.jsonl)
            # put the profile at ~110 min, 256 rows at more
            "setfit": {"datasets": ("twitter", "yelp"), "levels": (64,)},
            **{
                m: {"datasets": ("twitter", "yelp"), "levels": (64,)}
                for m in ("gpta", "gpta-bundled")
            },
            # the human label words (twitter) against the ids as words (twitter-ids)
            "finetune-lm": {"datasets": ("twitter", "twitter-ids"), **_STUDY_LM},
            **{
                m: {"datasets": ("twitter-ids",), **_STUDY_LM}
                for m in ("static-lm", "gpta-lm", "gpta-lm-words")
            },
        },
    ),
    # issue 27: the TA teaches with examples, under the true-few-shot protocol (no method,
    # anchors included, sees a labelled row beyond the level's N). The outside anchors,
    # plain fine-tuning, the names control, the cards of Qwen2.5-Coder-1.5B (llama.cpp,
    # `gpta models fetch qwen2.5-coder-1.5b`) with and without a feedback round, the cards of
    # the bundled TA, the cards adopted on the proxy's word alone (cards-ungated: what the
    # paired test costs), and gpta's prefix loop. The four datasets of the issue: twitter and
    # yelp-stars (label names), twitter-ids and yelp (ids; yelp as shipped is 0-4). The -ids
    # and -stars variants read the same rows as their source: the label-agnostic methods
    # (frozen-lr, setfit, finetune) run once on the source and the tables borrow them. What
    # is cut to fit one session's 2 cores (BENCHMARKS.md gives the measured time): 3 seeds,
    # not 5; 64 rows on twitter and yelp only, and without the names control; setfit, the
    # feedback round, the bundled TA's cards and gpta's prefix loop at 16 rows only (the
    # bundled TA and the prefix loop on twitter only).
    "cards": Profile(
        name="cards",
        datasets=("twitter", "twitter-ids", "yelp", "yelp-stars"),
        levels=(16, 32, 64),
        seeds=(0, 1, 2),
        methods=(
            "frozen-lr",
            "setfit",
            "finetune",
            "names",
            "cards",
            "cards-ungated",
            "cards-dialogue",
            "cards-bundled",
            "gpta",
        ),
        rounds=_DEFAULT_TRAINING.rounds,
        epochs_per_round=None,
        batch_size=_DEFAULT_TRAINING.batch_size,
        learning_rate=_DEFAULT_TRAINING.learning_rate,
        mixed_precision="bf16",
        max_length=96,
        max_prefix_tokens=24,
        dev_rows=0,
        test_rows=200,
        candidates=3,
        screen_size=64,
        ta_max_new_tokens=64,
        ta_backend="llamacpp",
        ta_model="fetched:qwen2.5-coder-1.5b",
        efficiency=False,
        workers=2,
        true_few_shot=True,
        overrides={name: {"levels": (16, 32)} for name in ("twitter-ids", "yelp-stars")},
        scopes={
            **{m: {"datasets": ("twitter", "yelp")} for m in ("frozen-lr", "finetune")},
            "setfit": {"datasets": ("twitter", "yelp"), "levels": (16,)},
            "names": {"levels": (16, 32)},
            "cards-dialogue": {"datasets": ("twitter", "yelp"), "levels": (16,)},
            **{m: {"datasets": ("twitter",), "levels": (16,)} for m in ("cards-bundled", "gpta")},
        },
    ),
    # the issue-8 cpu profile (48 optimizer steps at lr 2e-4, the [CLS]-pooler head, the
    # paper's loop order): its results stay in benchmarks/results/cpu-v1 for the old table
    "cpu-v1": Profile(
        name="cpu-v1",
        datasets=("twitter", "yelp", "squad"),
        levels=(64, 256),
        seeds=(0, 1, 2),
        methods=(
            "finetune",
            "static",
            "ta-once",
            "gpta",
            "gpta-tuned",
            "prompt-tuning",
            "transfer",
        ),
        rounds=3,
        epochs_per_round=1,
        steps_per_round=16,
        batch_size=16,
        mixed_precision="bf16",
        learning_rate=2e-4,
        max_length=128,
        dev_rows=64,
        test_rows=200,
        candidates=3,
        screen_size=32,
        ta_max_new_tokens=40,
        efficiency_rows=128,
        workers=2,
        overrides={
            "squad": {
                "max_length": 256,
                "dev_rows": 48,
                "test_rows": 100,
                "levels": (64,),
                "steps_per_round": 10,
            }
        },
    ),
    # larger sizes, all six datasets, on CUDA, bf16 mixed precision
    "gpu": Profile(
        name="gpu",
        datasets=("yelp", "twitter", "squad", "race", "cnndm", "xsum"),
        levels=(64, 256, 1000, None),
        seeds=(0, 1, 2),
        # the study's two (label words for ids, a second TA) need its datasets and TA
        methods=tuple(m for m in ALL_METHODS if m not in ("gpta-lm-words", "gpta-bundled")),
        rounds=5,
        epochs_per_round=1,
        batch_size=32,
        learning_rate=5e-5,
        max_length=256,
        dev_rows=300,
        test_rows=None,
        candidates=4,
        screen_size=64,
        ta_max_new_tokens=64,
        device="cuda",
        mixed_precision="bf16",
        efficiency_rows=1000,
        overrides={"squad": {"max_length": 384}, "race": {"max_length": 512}},
    ),
    # issue 10: heads (sequence vs lm-verbalizer) and prefix augmentation, on 2 CPU cores.
    # Every run trains rounds x steps_per_round batches whatever its level (equal steps for
    # every method AND level: 256 rows are seen less often than 64, not more), see
    # BENCHMARKS.md for the sizing and every reduction.
    "heads": Profile(
        name="heads",
        datasets=("yelp", "twitter"),
        levels=(64, 256),
        seeds=(0, 1, 2),
        methods=(
            "finetune",
            "finetune-lm",
            "static-lm",
            "gpta-lm",
            "gpta-augment",
            "gpta-augment-lm",
        ),
        rounds=3,
        epochs_per_round=1,
        steps_per_round=6,  # 18 steps of 8 rows per run: 2.25 epochs at 64 rows, 0.56 at 256
        batch_size=8,
        mixed_precision="bf16",  # every method alike; 1.6x faster SmolLM2 steps on this CPU
        learning_rate=1e-4,  # 12 steps at 5e-5 left the encoder at its majority class (cpu)
        max_length=96,
        # SmolLM2's chat frame takes 30 of the 96 tokens: a 24-token prefix leaves the text 42
        # (a median tweet is 35 SmolLM2 tokens, a median yelp review 89)
        max_prefix_tokens=24,
        dev_rows=32,
        test_rows=100,
        candidates=2,
        screen_size=16,
        ta_max_new_tokens=24,
        efficiency=False,
    ),
    # learning curves over 20 epochs (rounds=20 x 1 epoch): train loss, dev loss and dev
    # score per epoch; a reduced set (twitter, 64 rows, 1 seed, 4 methods), see BENCHMARKS.md
    # for its time and the smaller subsets
    "curves": Profile(
        name="curves",
        datasets=("twitter",),
        levels=(64,),
        seeds=(0,),
        methods=("finetune", "gpta-augment", "finetune-lm", "gpta-augment-lm"),
        rounds=20,
        epochs_per_round=1,
        batch_size=8,
        learning_rate=1e-4,  # as the heads profile
        max_length=96,  # as the heads profile: 30 frame + 24 prefix + a tweet (median 35)
        max_prefix_tokens=24,
        dev_rows=32,
        test_rows=100,
        candidates=2,
        screen_size=16,
        ta_max_new_tokens=24,
        efficiency=False,
    ),
}


def in_scope(profile: Profile, method: str, dataset: str, level: int | None, seed: int) -> bool:
    """Whether ``profile`` runs ``method`` at this dataset, level and seed (its ``scopes``)."""
    scope = profile.scopes.get(method, {})
    return (
        dataset in scope.get("datasets", (dataset,))
        and level in scope.get("levels", (level,))
        and seed in scope.get("seeds", (seed,))
    )


def setting(profile: Profile, dataset: str, key: str) -> Any:
    """A profile setting, overridden per dataset where the profile says so."""
    return profile.overrides.get(dataset, {}).get(key, getattr(profile, key))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepare_splits(profile: Profile, dataset: str, out: Path) -> dict[str, Any]:
    """Write train pool / dev / test files for ``dataset`` under ``out``; return their paths."""
    spec = DATASETS[dataset]
    source = DATA_DIR / (spec.source or dataset)
    if not (source / "train.jsonl").is_file():
        raise FileNotFoundError(f"benchmark data not found: {source}/train.jsonl")
    train = read_jsonl(source / "train.jsonl")
    test = read_jsonl(source / "test.jsonl")
    if spec.label_map:
        column = spec.columns["label_column"]
        train, test = (
            [{**row, column: spec.label_map[str(row[column])]} for row in rows]
            for rows in (train, test)
        )
    dev_rows = setting(profile, dataset, "dev_rows")
    test_rows = setting(profile, dataset, "test_rows")
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    dev_ids = set(order[:dev_rows])
    pool = [row for i, row in enumerate(train) if i not in dev_ids]
    dev = [train[i] for i in sorted(dev_ids)]
    test = test if test_rows is None else test[:test_rows]
    folder = out / "data" / dataset
    paths = {}
    for name, rows in (("train", pool), ("dev", dev), ("test", test)):
        write_jsonl(folder / f"{name}.jsonl", rows)
        paths[name] = str(folder / f"{name}.jsonl")
    paths["rows"] = {"train_pool": len(pool), "dev": len(dev), "test": len(test)}
    return paths
