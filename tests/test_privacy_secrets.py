"""Secrets: credentials are refused in the base URL, and scrubbed from what leaves and comes
back (unit level; the runs through a real server are in test_privacy_server.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import gpta_cli
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpta.chat.base import ChatResult, Sampling, Usage
from gpta.config import build_config
from gpta.errors import GptaUserError
from gpta.privacy import ExposureChannel, ExposureLedger, Redactor
from gpta.privacy.channel import clean_messages
from gpta.privacy.ledger import messages_hash
from gpta.secrets import register_secret, scrub, scrub_counted, scrub_obj

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


@pytest.mark.slow
def test_the_cli_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = gpta_cli(
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
        env={"PYTHONPATH": SRC},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:")
    assert "holds a credential" in result.stderr and "assistant.api_key_env" in result.stderr
    assert "hunter2pass" not in result.stderr + result.stdout
    assert "c2VjcmV0dmFsdWU" not in result.stderr + result.stdout
    assert not out.exists()


# --- scrubbing: every secret found is replaced, ordinary prose is left alone ---------------
KEY = "gpta-unit-test-key-5d1e9a77c0"  # registered like assistant.api_key_env's value


@pytest.fixture(autouse=True)
def _registered():
    register_secret(KEY)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"the server said: invalid key {KEY}.", KEY),
        ("use sk-proj-Zx81KqPw0aLm3NvB7yTr5UcE for it", "Zx81KqPw0aLm3NvB7yTr5UcE"),
        ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 here", "abcdefghijklmnopqrstuvwxyz0123"),
        ("AKIAIOSFODNN7EXAMPLE is the id", "IOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("Authorization: Bearer abcdefghijklmnop0123456789", "abcdefghijklmnop0123456789"),
        ("slack xoxb-123456789012-1234567890123-abcdefghijabcdefghijabcd", "abcdefghijabcd"),
        ("sk_live_abcdefghijklmnopqrstuvwx is stripe", "abcdefghijklmnopqrstuvwx"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx4\n-----END RSA PRIVATE KEY-----",
            "MIIEp",
        ),
        ("see http://alice:hunter2pass@host.example/v1", "hunter2pass"),
        ("see https://host.example/v1?api-key=c2VjcmV0dmFsdWU&x=1", "c2VjcmV0dmFsdWU"),
        ('{"password": "correct horse battery"}', "correct"),
        ("the password is hunter22, as agreed", "hunter22"),
    ],
)
def test_secrets_are_replaced(text, secret):
    clean, count = scrub_counted(text)
    assert secret not in clean and "[SECRET]" in clean and count >= 1


@pytest.mark.parametrize(
    "text",
    [
        "English tweets from the SemEval-2017 sentiment task: negative, neutral or positive.",
        'Current instruction: "Classify the tweet\'s sentiment.", accuracy 0.830 (up 0.018).',
        "recall per label: negative 0.71, neutral 0.33, positive 0.91.",
        "prompt_tokens: 123456 and a tokenizer: bert-base-uncased; the secretary: Johnathan",
        "a normal sentence about skis, passwords in general and API keys as a topic",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert scrub(text) == text


# --- secrets written in prose: what the channel and the exemplars clean (prose=True) --------
@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("my aws secret is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok", "wJalrXUtnFEMI"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),  # named by nothing
        ("je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY and more", "je7MtGbClwBF"),
        ("hash d41d8cd98f00b204e9800998ecf8427e here", "d41d8cd98f00b204e9800998ecf8427e"),
        ("password hunter2", "hunter2"),
        ("my password is letmein, ok", "letmein"),
        ("Wifi password: tulipfield please", "tulipfield"),
        ("passcode 7731!", "7731"),
        ("PIN 4921 at the machine", "4921"),
        ('db_pass = "s3cr3t value"', "s3cr3t value"),
        ("secret key: ThisIsMyLongPassword2015", "ThisIsMyLongPassword2015"),
        ("login: bob / pass: correct-horse-9", "correct-horse-9"),
        ("pw=Tr0ub4dor&3 for the wifi", "Tr0ub4dor&3"),
        ("Passwort: geheim123, bitte", "geheim123"),
        ("contraseña: hunter2 y nada más", "hunter2"),
        ("unlabelled 9fQx2LmT7vKp3RwZ8yNc4BhJ6dGs1AeU0oIi5tXq at the end", "9fQx2LmT7vKp"),
    ],
)
def test_secrets_written_in_prose_are_replaced_where_text_leaves(text, secret):
    clean, count = scrub_counted(text, prose=True)
    assert secret not in clean and "[SECRET]" in clean and count >= 1
    cleaned, removed = clean_messages([{"role": "user", "content": text}])
    assert secret not in cleaned[0]["content"] and removed["secret"] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "the password reset link never arrived",
        "the password manager reset my settings; the secret sauce at 12 noon was great",
        "a pass to the museum: free on Sundays",
        "passwords in general and API keys as a topic; the secretary: Johnathan",
        "we use sentence-transformers/all-MiniLM-L6-v2 and HuggingFaceTB/SmolLM2-135M-Instruct",
        "#ThisIsAVeryLongHashtagName2015 #SuperBowl50Champions2016",
        "see https://host.example/openai/deployments/gpt4o-mini-2024-07-18/chat/completions",
        "internationalization and counterrevolutionaries are long words",
        "order 1234567890123456789012 shipped",
    ],
)
def test_prose_that_holds_no_secret_is_left_alone(text):
    assert scrub_counted(text, prose=True) == (text, 0)


def test_gpta_records_are_not_scrubbed_as_prose():
    """A ledger record's hashes look random: scrub (for records) leaves them, only what
    is sent (prose) is held to the entropy rule."""
    record = {"sha256": "e0e4ea513e07f30840d67ec727f0f59481a27d09b1e726af206798750b89b532"}
    assert scrub_obj(record) == record
    assert scrub_counted(record["sha256"], prose=True)[0] == "[SECRET]"


@settings(max_examples=300, deadline=None)
@example("sk-://u:p@sk-@")  # found by hypothesis: a [HANDLE] completed URL credentials
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    KEY,
                    "sk-",
                    "proj-",
                    "a" * 20,
                    "Bearer ",
                    "key=",
                    "?token=",
                    "://u:p@",
                    "@",
                    " ",
                    "ops@acme.example",
                    "+1 415 555 0199",
                    "[SECRET]",
                    "[EMAIL]",
                    "10.0.0.1",
                    "x.io",
                    "password ",
                    "pwd: ",
                    "hunter2",
                    "PIN 4921",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "born on 12 March 1985",
                    "12 Baker Street",
                    "DE89 3704 0044 0532 0130 00",
                ]
            ),
            st.text(max_size=4),
        ),
        max_size=14,
    ).map("".join)
)
def test_scrubbing_and_cleaning_leave_nothing_to_find_a_second_time(text):
    once = scrub(text)
    assert scrub(once) == once and KEY not in once
    cleaned, _ = clean_messages([{"role": "user", "content": text}])
    again, removed = clean_messages(cleaned)
    assert again == cleaned and removed == {}


# --- the channel: the backend gets exactly what the ledger records ------------------------
class RecordingChat:
    """Records what it was sent and answers with ``answer`` (the key, for the echo case)."""

    backend, model_name = "scripted", "recording"

    def __init__(self, answer: str = "Say how the author feels."):
        self.sent: list[list[dict]] = []
        self.answer = answer

    def chat(self, messages, sampling, **params):
        n = sampling.n
        self.sent.append(messages)
        return ChatResult([self.answer] * n, Usage(10, 5), 0.01, faults=(f"retried: {KEY}",))


def test_personal_data_and_keys_are_replaced_before_the_ledger_and_the_backend(tmp_path):
    chat = RecordingChat()
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    channel = ExposureChannel(chat, ledger, redactor=Redactor(["Dana Whitfield"]))
    described = (
        "Tweets labelled by Dana Whitfield (dana@example.org, +44 20 7946 0958); upload "
        f"key {KEY}, token sk-proj-Zx81KqPw0aLm3NvB7yTr5UcE."
    )
    channel.send(
        [{"role": "user", "content": described}],
        Sampling(n=1, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0),
    )
    request = next(r for r in map(json.loads, ledger.path.read_text().splitlines()))
    assert chat.sent == [request["messages"]]  # byte for byte what the backend was given
    assert request["sha256"] == messages_hash(chat.sent[0])
    assert "scrubbed" not in request  # nothing was changed after the fact
    sent = json.dumps(chat.sent)
    for value in ("Dana", "Whitfield", "dana@example.org", "7946", KEY, "Zx81KqPw0aLm3NvB7yTr5UcE"):
        assert value not in sent
    assert request["removed"] == {"email": 1, "name": 1, "phone": 1, "secret": 2}


def test_an_echoed_key_is_scrubbed_from_the_answer_the_ledger_and_the_cache(tmp_path):
    from gpta.llm.cache import CachedChatModel, ResponseCache

    cache_path = tmp_path / "cache.sqlite"
    chat = CachedChatModel(
        RecordingChat(answer=f"Decide the sentiment {KEY}"), ResponseCache(cache_path)
    )
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    channel = ExposureChannel(chat, ledger)
    for _ in range(2):  # the second answer comes from the cache
        result = channel.send(
            [{"role": "user", "content": "Write an instruction."}],
            Sampling(n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0),
        )
        assert result.texts == ["Decide the sentiment [SECRET]"] * 2
        assert KEY not in json.dumps(result.faults)
    assert result.cached and len(chat.inner.sent) == 1
    for path in tmp_path.iterdir():  # the ledger and the cache (with its WAL)
        assert KEY.encode() not in path.read_bytes(), path
    texts = [
        r["texts"] for r in map(json.loads, ledger.path.read_text().splitlines()) if "texts" in r
    ]
    assert texts == [["Decide the sentiment [SECRET]"] * 2] * 2  # recorded as returned
