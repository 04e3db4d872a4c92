"""Secrets: credentials are refused in the base URL, and scrubbed from what leaves and comes
back (unit level; the runs through a real server are in test_privacy_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpta.config import build_config
from gpta.errors import GptaUserError

SRC = str(Path(__file__).resolve().parents[1] / "src")


# --- credentials in assistant.base_url are refused -----------------------------------------
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://alice:hunter2pass@127.0.0.1:8000/v1", "hunter2pass"),
        ("https://alice@llm.example.org/v1", "alice"),
        ("https://llm.example.org/v1?api-key=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/v1?api_key=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/v1?key=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/v1?x=1&token=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/v1?access_token=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/v1?sig=c2VjcmV0dmFsdWU", "c2VjcmV0dmFsdWU"),
        ("https://llm.example.org/sk-proj-c2VjcmV0dmFsdWUc2VjcmV0/v1", "c2VjcmV0dmFsdWUc2VjcmV0"),
    ],
)
def test_a_base_url_with_a_credential_is_refused(url, secret):
    with pytest.raises(GptaUserError) as err:
        build_config({"assistant": {"backend": "openai", "base_url": url}})
    message = str(err.value)
    assert "assistant.base_url: holds a credential" in message
    assert "assistant.api_key_env" in message and "assistant.extra_headers" in message
    assert secret not in message  # the error does not repeat the credential


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "https://api.openai.com/v1",
        "https://my-resource.openai.azure.com/openai/v1?api-version=2024-10-21",
        "http://localhost:11434/v1#models",
    ],
)
def test_an_ordinary_base_url_is_kept(url):
    assert build_config({"assistant": {"base_url": url}}).assistant.base_url == url


def test_the_cli_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpta.cli",
            "train",
            "--train",
            str(tmp_path / "train.jsonl"),
            "--description",
            "Tweets.",
            "--ta-backend",
            "openai",
            "--ta-base-url",
            "http://alice:hunter2pass@127.0.0.1:9/v1?api-key=c2VjcmV0dmFsdWU",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:")
    assert "holds a credential" in result.stderr and "assistant.api_key_env" in result.stderr
    assert "hunter2pass" not in result.stderr + result.stdout
    assert "c2VjcmV0dmFsdWU" not in result.stderr + result.stdout
    assert not out.exists()
