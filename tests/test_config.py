from __future__ import annotations

from pathlib import Path

import pytest

from gpta.config import GptaConfig, build_config, load_config
from gpta.errors import GptaUserError


def test_defaults_are_the_bundled_models():
    config = GptaConfig()
    assert config.model.resolved_name("classification") == "bundled:minilm"
    assert config.model.resolved_name("qa") == "bundled:minilm"
    assert config.model.resolved_name("summarization") == "bundled:smollm2"
    assert build_config({"model": {"name_or_path": "x/y"}}).model.resolved_name("qa") == "x/y"
    assert config.assistant.model == "bundled:smollm2"
    assert config.privacy.exposure == "none"


def test_unknown_key_names_the_option(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  roundz: 3\n", encoding="utf-8")
    with pytest.raises(GptaUserError) as err:
        load_config(path)
    assert "training.roundz" in err.value.message
    assert "unknown option" in err.value.message
    assert str(path) in err.value.message


def test_bad_value_names_the_option():
    with pytest.raises(GptaUserError) as err:
        build_config({"training": {"rounds": 0}})
    assert "training.rounds" in err.value.message


def test_prefix_cap_must_leave_room_for_text():
    with pytest.raises(GptaUserError) as err:
        build_config({"model": {"max_length": 32}, "assistant": {"max_prefix_tokens": 30}})
    assert "max_prefix_tokens" in err.value.message


@pytest.mark.parametrize("size", [0, -3, 1.5, 0.0])
def test_train_size_must_be_a_count_or_fraction(size):
    with pytest.raises(GptaUserError) as err:
        build_config({"data": {"train_size": size}})
    assert "data.train_size" in err.value.message


def test_overrides_win_over_file_and_relative_paths_follow_the_file(tmp_path: Path):
    (tmp_path / "train.csv").write_text("text,label\na,b\n", encoding="utf-8")
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  train: train.csv\ntraining:\n  rounds: 2\n", encoding="utf-8")
    config = load_config(path, {"training.rounds": 5, "assistant.candidates": 2})
    assert config.training.rounds == 5
    assert config.assistant.candidates == 2
    assert Path(config.data.train) == tmp_path / "train.csv"


def test_toml_config(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("seed = 7\n[training]\nbatch_size = 8\n", encoding="utf-8")
    config = load_config(path)
    assert (config.seed, config.training.batch_size) == (7, 8)


def test_description_is_required_and_read_from_file(tmp_path: Path):
    with pytest.raises(GptaUserError) as err:
        GptaConfig().description_text()
    assert "description" in err.value.message
    file = tmp_path / "d.txt"
    file.write_text("  Tweets about airlines.\n", encoding="utf-8")
    config = build_config({"data": {"description_file": str(file)}})
    assert config.description_text() == "Tweets about airlines."
