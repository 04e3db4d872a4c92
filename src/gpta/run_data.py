"""What a run records and says about its data: where the dev rows come from, the splits'
summary (splits.json, which ``--resume`` checks the data against), data paths made absolute.

Reading the splits themselves is :func:`gpta.run.load_data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpta.config import DATA_PATH_KEYS, GptaConfig
from gpta.data import Table


def dev_split_off_labelled(config: GptaConfig, tables: dict[str, Table]) -> bool:
    """Whether the dev rows were split off the user's only labelled rows (true few-shot): no
    dev file, and no row of the train file left outside the rows sampled for training. The
    one fact behind the dev line and ``selection: auto``."""
    return config.data.dev is None and not tables["train"].unsampled


def dev_source(config: GptaConfig, tables: dict[str, Table]) -> str:
    """Where the rows that choose the best round and the prefix come from, in one line."""
    dev, train = len(tables["dev"]), len(tables["train"])
    if config.data.dev is not None:
        return f"dev: {dev} rows of {Path(config.data.dev).name}"
    source = Path(str(config.data.train)).name
    outside = not dev_split_off_labelled(config, tables)
    sampled = f", outside the {train} sampled for training" if outside else ""
    return (
        f"dev: {dev} rows ({config.data.dev_fraction:.0%}) of {source} split off before "
        f"training{sampled}"
    )


def split_summary(tables: dict[str, Table]) -> dict[str, Any]:
    """splits.json: where each split came from and its size."""
    return {name: {"source": t.source, "rows": len(t)} for name, t in tables.items()}


def absolute_data_paths(config: GptaConfig) -> None:
    """Record data paths absolutely so that a resumed run finds them from anywhere."""
    for key in DATA_PATH_KEYS:
        value = getattr(config.data, key)
        if value is not None and Path(value).exists():
            setattr(config.data, key, str(Path(value).resolve()))
