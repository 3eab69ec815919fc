import argparse
from dataclasses import fields

import pytest

from digitrec.cli_parser import build_parser
from digitrec.recipes import RECIPES, TrainConfig


def _command(name: str) -> argparse.ArgumentParser:
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def _actions(name: str) -> dict[str, argparse.Action]:
    return {option: action for action in _command(name)._actions for option in action.option_strings}


def test_every_train_setting_says_its_cnn_default_in_its_help():
    by_dest = {action.dest: action for action in _command("train")._actions}
    for setting in fields(TrainConfig):
        if "help" in setting.metadata:
            cnn_default = getattr(RECIPES["cnn"], setting.name)
            assert by_dest[setting.name].help.endswith(f"(cnn: {cnn_default!r})"), setting.name


def test_settings_left_out_default_to_none_so_the_recipe_decides():
    args = build_parser().parse_args(["train"])
    settings = [f.name for f in fields(TrainConfig) if "help" in f.metadata]
    assert {getattr(args, name) for name in settings} == {None}


def test_train_model_is_a_hidden_alias_stored_apart_from_recipe():
    args = build_parser().parse_args(["train", "--model", "mlp"])
    assert (args.recipe_alias, args.recipe) == ("mlp", None)
    assert "--model" not in _command("train").format_help()


def test_recipe_offers_exactly_the_recipes():
    assert _actions("train")["--recipe"].choices == list(RECIPES)


def test_a_usage_error_exits_2_with_one_line_naming_the_command_to_ask_for_help(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["train", "--epochs", "many"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("digitrec: error: argument --epochs: invalid int value: 'many'")
    assert err.endswith("(see digitrec train --help)\n") and err.count("\n") == 1


def test_a_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(
        "digitrec: error: the following arguments are required: command"
    )


@pytest.mark.parametrize("k", ["0", "11"])
def test_predict_refuses_a_top_k_outside_one_to_ten(k, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["predict", "a.png", "--top-k", k])
    assert exited.value.code == 2
    assert f"argument --top-k: invalid choice: {k}" in capsys.readouterr().err


def test_predict_takes_a_top_k_of_ten_as_a_number():
    assert build_parser().parse_args(["predict", "a.png", "--top-k", "10"]).top_k == 10


def test_augment_has_a_negative_form():
    parser = build_parser()
    assert parser.parse_args(["train", "--no-augment"]).augment is False
    assert parser.parse_args(["train", "--augment"]).augment is True


@pytest.mark.parametrize("command", ["train", "join", "evaluate", "compare", "show", "export"])
def test_every_command_that_reads_data_takes_data_dir_and_json(command):
    assert {"--data-dir", "--json"} <= set(_actions(command))


def test_dataset_is_a_train_setting_not_a_second_data_flag():
    assert _actions("train")["--dataset"].help.endswith("(cnn: 'mnist')")


@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "serve"])
def test_every_model_flag_lists_every_form_a_model_takes(command):
    from digitrec.artifact import BUNDLED

    help_text = " ".join(_actions(command)["--model"].help.split())
    assert "a model directory, a .keras or .tflite file, a SavedModel directory" in help_text
    assert all(name in help_text for name in BUNDLED)


def test_compare_lists_every_form_a_model_takes_too():
    (models,) = (a for a in _command("compare")._actions if a.dest == "models")
    assert ".tflite" in models.help and "SavedModel" in models.help


def test_a_command_refuses_a_flag_of_another_command_guessing_its_own(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--multi"])
    assert capsys.readouterr().err == (
        "digitrec: error: unrecognized arguments: --multi (see digitrec evaluate --help)\n"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--splt", "test"])
    assert "unrecognized arguments: --splt test; did you mean --split?" in capsys.readouterr().err
