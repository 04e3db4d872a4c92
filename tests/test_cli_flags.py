"""Issue 20, one place for each fact: the `gpta train` flags are made from the config fields,
and one reader parses every ``KEY=VALUE`` override (gpta's --set and the benchmarks')."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

import click
import pytest

from gpta.cli import TRAIN_FLAGS, inference, main, teaching_assistant, training
from gpta.config import (
    DEVICES,
    GptaConfig,
    config_field,
    parse_overrides,
    split_override,
)
from gpta.data import DATA_FORMATS
from gpta.errors import GptaUserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

# Every flag `gpta train` had before its flags were generated: users' scripts use them.
OLD_FLAGS = {
    "--train", "--dev", "--test", "--format", "--text-column", "--label-column",
    "--description", "--description-file", "--train-size", "--dev-fraction", "--test-fraction",
    "--model", "--max-length", "--rounds", "--epochs-per-round", "--steps-per-round",
    "--min-steps", "--min-epochs", "--patience", "--learning-rate", "--batch-size",
    "--gradient-accumulation-steps", "--mixed-precision", "--head", "--candidates",
    "--ta-model", "--ta-backend", "--ta-base-url", "--max-llm-cost", "--max-llm-tokens",
    "--max-prefix-tokens", "--screen-size", "--warm-start-from", "--domain", "--report-to",
    "--seed", "--output-dir", "--device", "--config", "--set", "--overwrite", "--resume",
    "--no-cache", "--quiet", "--log-format",
}  # fmt: skip


def _options(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in param.opts
    }


def _literal(annotation: object) -> tuple[str, ...] | None:
    kinds = [annotation, *get_args(annotation)]
    found = [get_args(k) for k in kinds if get_origin(k) is Literal]
    return found[0] if found else None


def test_every_old_train_flag_is_still_there_and_task_is_new():
    flags = set(_options(training.train))
    assert flags >= OLD_FLAGS
    assert "--task" in flags


@pytest.mark.parametrize(("flag", "dotted"), sorted(TRAIN_FLAGS.items()))
def test_each_generated_flag_has_its_config_fields_help_and_choices(flag, dotted):
    option = _options(training.train)[flag]
    field = config_field(dotted)
    assert field.description, f"{dotted} needs a description: it is the help of {flag}"
    assert option.help == f"{field.description} [{dotted}]"
    assert option.name == dotted.replace(".", "__")
    assert option.default is None  # an unset flag leaves the config file's (or default) value
    choices = _literal(field.annotation)
    if choices is None:
        assert not isinstance(option.type, click.Choice)
    else:
        assert isinstance(option.type, click.Choice)
        assert tuple(option.type.choices) == choices


def test_the_other_commands_offer_the_configs_devices_and_formats():
    assert _literal(GptaConfig.model_fields["device"].annotation) == DEVICES
    assert _literal(config_field("data.format").annotation) == DATA_FORMATS
    assigned = [inference.predict, inference.evaluate, teaching_assistant.assistant_tune]
    for command in assigned:
        assert tuple(_options(command)["--device"].type.choices) == DEVICES
    input_formats = tuple(_options(inference.predict)["--input-format"].type.choices)
    assert input_formats == ("text", "csv", "tsv", "jsonl", "parquet")


def test_task_flag_reaches_the_config(monkeypatch, tmp_path):
    import gpta.run

    seen = {}
    monkeypatch.setattr(gpta.run, "train", lambda config, **_: seen.setdefault("config", config))
    main(
        ["train", "--task", "qa", "--train", str(tmp_path / "squad.jsonl"),
         "--description", "Questions about passages.", "--output-dir", str(tmp_path / "run")]
    )  # fmt: skip
    assert seen["config"].task == "qa"
    assert seen["config"].data.train == str(tmp_path / "squad.jsonl")


def test_a_flag_and_a_set_that_agree_are_one_option_and_list_flags_split_on_commas(
    monkeypatch, tmp_path
):
    import gpta.run

    seen = {}
    monkeypatch.setattr(gpta.run, "train", lambda config, **_: seen.setdefault("config", config))
    main(
        ["train", "--set", "task=multiple_choice", "--task", "multiple_choice",
         "--report-to", "tensorboard,mlflow", "--set", "training.report_to=[tensorboard, mlflow]",
         "--train-size", "0.5", "--output-dir", str(tmp_path / "run")]
    )  # fmt: skip
    assert seen["config"].task == "multiple_choice"
    assert seen["config"].training.report_to == ["tensorboard", "mlflow"]
    assert seen["config"].data.train_size == 0.5


def test_a_flag_that_disagrees_with_a_set_is_refused_naming_both(monkeypatch, tmp_path, capsys):
    """No silent winner (docs/meaning.md): the flag and the --set item are both named."""
    import gpta.run

    monkeypatch.setattr(gpta.run, "train", lambda config, **_: pytest.fail("validated"))
    with pytest.raises(SystemExit) as raised:
        main(["train", "--set", "task=summarization", "--task", "multiple_choice",
              "--output-dir", str(tmp_path / "run")])  # fmt: skip
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--task multiple_choice and --set task=summarization" in err


def test_unknown_task_exits_2_naming_the_flag_and_the_choices(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--task", "translation"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--task" in err and "multiple_choice" in err
    assert "fix: see `gpta train --help`" in err


def test_train_help_lists_task_with_its_choices(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--task [classification|qa|multiple_choice|summarization]" in out
    assert "[training.rounds]" in out and "--report-to NAME[,NAME...]" in out


# --- the one KEY=VALUE reader ----------------------------------------------------------------


def test_overrides_are_read_as_yaml_values():
    assert parse_overrides(
        ["training.rounds=3", " task =qa", "training.report_to=[tensorboard]", "data.domain="]
    ) == {
        "training.rounds": 3,
        "task": "qa",
        "training.report_to": ["tensorboard"],
        "data.domain": "",
    }


@pytest.mark.parametrize("item", ["rounds", "=5", ""])
def test_an_item_without_a_key_names_the_option_and_shows_an_example(item):
    with pytest.raises(GptaUserError) as raised:
        split_override(item, option="--set", example="rounds=2")
    assert f"--set {item!r}: expected KEY=VALUE, e.g. --set rounds=2" == raised.value.message


def test_benchmarks_set_uses_the_same_reader(capsys):
    from benchmarks.__main__ import apply_settings
    from benchmarks.__main__ import main as bench_main
    from benchmarks.profiles import PROFILES

    with pytest.raises(SystemExit) as raised:
        bench_main(["run", "--profile", "smoke", "--set", "rounds=[1,", "--out", "unused"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--set rounds" in err and "not valid YAML" in err and "fix:" in err
    with pytest.raises(SystemExit) as raised:
        bench_main(["run", "--profile", "smoke", "--set", "rounds", "--out", "unused"])
    assert raised.value.code == 2
    assert "expected KEY=VALUE, e.g. --set rounds=2" in capsys.readouterr().err
    # text settings keep the text YAML would read as a boolean; 1e-4 is a number
    changed = apply_settings(
        PROFILES["smoke"], ["mixed_precision=no", "learning_rate=1e-4", "min_epochs=2e0"]
    )
    assert changed.mixed_precision == "no"
    assert changed.learning_rate == 1e-4 and changed.min_epochs == 2.0


def test_a_section_given_as_a_mapping_keeps_its_other_options(monkeypatch, tmp_path):
    """`--set 'training={batch_size: 8}'` sets batch_size; training.rounds from the config
    file or an earlier --set stays (it used to drop the whole section silently)."""
    import gpta.run

    seen = []
    monkeypatch.setattr(gpta.run, "train", lambda config, **_: seen.append(config))
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  rounds: 3\n  learning_rate: 0.001\n", encoding="utf-8")
    main(["train", "--config", str(config), "--set", "training={batch_size: 8}",
          "--output-dir", str(tmp_path / "run")])  # fmt: skip
    main(["train", "--set", "training.rounds=7", "--set", "training={batch_size: 8}",
          "--output-dir", str(tmp_path / "run")])  # fmt: skip
    first, second = seen
    assert (first.training.rounds, first.training.learning_rate) == (3, 0.001)
    assert first.training.batch_size == second.training.batch_size == 8
    assert second.training.rounds == 7
