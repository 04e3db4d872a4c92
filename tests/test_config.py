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


@pytest.mark.parametrize(
    ("section", "key", "value", "bound"),
    [
        ("training", "rounds", 10**20, "1000"),
        ("training", "rounds", 1e20, "1,000"),
        ("training", "batch_size", 99999999999999999999999999, "4096"),
        ("training", "epochs_per_round", 10**6, "1000"),
        ("training", "steps_per_round", 10**9, "1000000"),
        ("training", "gradient_accumulation_steps", 10**5, "1024"),
        ("training", "eval_batch_size", 10**5, "4096"),
        ("assistant", "candidates", 10**3, "32"),
        ("selection", "screen_size", 10**12, "100000000"),
        ("model", "max_length", 10**6, "8192"),
        ("model", "num_beams", 10**3, "64"),
        ("data", "train_size", 10**12, "100,000,000"),
    ],
)
def test_every_count_is_bounded_and_the_message_says_the_bound(section, key, value, bound):
    with pytest.raises(GptaUserError) as err:
        build_config({section: {key: value}})
    assert f"{section}.{key}" in err.value.message and bound in err.value.message
    assert err.value.hint  # the fix: line


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -float("inf")])
def test_inf_and_nan_are_not_numbers_here(value):
    with pytest.raises(GptaUserError) as err:
        build_config({"training": {"learning_rate": value}})
    assert "training.learning_rate" in err.value.message


def test_seed_fits_numpy_and_a_huge_value_is_shown_cut():
    with pytest.raises(GptaUserError) as err:
        build_config({"seed": 2**40})
    assert "seed" in err.value.message and "4294967295" in err.value.message
    with pytest.raises(GptaUserError) as err:
        build_config({"output_dir": "x" * 10_000, "seed": "y" * 10_000})
    assert len(err.value.message) < 500 and "10,002 characters" in err.value.message


def test_config_file_that_cannot_be_read_or_parsed(tmp_path: Path):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(GptaUserError):
        load_config(folder)
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1,\n", encoding="utf-8")
    with pytest.raises(GptaUserError) as err:
        load_config(bad)
    assert "could not be parsed" in err.value.message and err.value.hint


# --- options that moved to the selection section ------------------------------------------
@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("assistant", "screen_size", 8),
        ("assistant", "margin", 0.25),
        ("assistant", "adopt_confidence", 0.5),
        ("cards", "folds", 3),
    ],
)
def test_a_moved_option_is_still_read_where_it_was(section, key, value, tmp_path):
    """A saved run's config.yaml (or an older config file) keeps working: the option lands in
    the selection section, and the config written back holds it there only."""
    from gpta.config import MOVED_OPTIONS, dump_config, read_config_file

    config = build_config({section: {key: value}})
    new = MOVED_OPTIONS[(section, key)].split(".")[1]
    assert getattr(config.selection, new) == value
    assert key not in type(getattr(config, section)).model_fields
    dump_config(config, tmp_path / "config.yaml")
    written = read_config_file(tmp_path / "config.yaml")
    assert written["selection"][new] == value and key not in written[section]
    assert build_config(written) == config


def test_a_moved_option_set_in_both_places_must_agree():
    agreed = build_config({"assistant": {"margin": 0.1}, "selection": {"margin": 0.1}})
    assert agreed.selection.margin == 0.1
    with pytest.raises(GptaUserError) as err:
        build_config({"assistant": {"screen_size": 8}, "selection": {"screen_size": 16}})
    assert "assistant.screen_size" in err.value.message
    assert "selection.screen_size" in err.value.message


def test_selection_options_are_set_by_their_new_name():
    config = build_config({"selection": {"screen_size": 12, "folds": 5, "adopt_confidence": 0}})
    assert (config.selection.screen_size, config.selection.folds) == (12, 5)
    assert config.selection.adopt_confidence == 0
