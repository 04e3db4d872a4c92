"""Where gpta keeps its files: the cache dir, and the TA's response cache inside it.

At the bottom of the house, so that the bundled and fetched models and the LLM layer all
find the same folder without importing one another.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Where gpta keeps converted weights and other caches (``GPTA_CACHE_DIR`` overrides)."""
    return Path(os.environ.get("GPTA_CACHE_DIR") or platformdirs.user_cache_dir("gpta"))


def llm_cache_path() -> Path:
    """``GPTA_LLM_CACHE``, else ``llm-cache.sqlite`` in gpta's cache dir."""
    override = os.environ.get("GPTA_LLM_CACHE")
    return Path(override) if override else cache_dir() / "llm-cache.sqlite"
