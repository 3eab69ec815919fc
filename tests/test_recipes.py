import argparse
from dataclasses import fields

import pytest

from digitrec.cli_parser import build_parser
from digitrec.errors import ConfigError
from digitrec.recipes import (
    ARCHITECTURES,
    AUGMENTATION_AMOUNTS,
    RECIPES,
    RUNNING_SETTINGS,
    TrainConfig,
    configure,
    flag_of,
    recipe,
)

FIELDS = {f.name for f in fields(TrainConfig)}
SETTINGS = {f.name for f in fields(TrainConfig) if "help" in f.metadata}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_unchanged_and_names_a_known_architecture(name):
    config = recipe(name)
    assert config == RECIPES[name] and config.model in ARCHITECTURES


def test_the_ensemble_recipe_is_five_cnn_members():
    config = recipe("ensemble")
    assert (config.members, config.model) == (5, "cnn")


def test_an_unknown_recipe_is_refused_listing_the_known_ones():
    with pytest.raises(ConfigError, match="unknown recipe 'resnet'; choose one of softmax, mlp, lenet5"):
        recipe("resnet")


def test_an_override_of_none_for_every_field_keeps_the_whole_recipe():
    assert recipe("softmax", **dict.fromkeys(FIELDS)) == RECIPES["softmax"]


def test_configure_applies_overrides_to_any_base_configuration():
    config = configure(RECIPES["lenet5"], epochs=3, seed=7)
    assert (config.model, config.epochs, config.seed, config.lr) == ("lenet5", 3, 7, RECIPES["lenet5"].lr)


def test_flags_are_dashed_field_names_unless_the_field_names_its_own():
    assert flag_of("rotation_deg") == "--rotation"
    assert flag_of("batch_size") == "--batch-size"
    assert flag_of("worker_timeout_s") == "--worker-timeout"


@pytest.mark.parametrize("amount", AUGMENTATION_AMOUNTS)
def test_an_augmentation_amount_is_refused_when_the_run_does_not_augment(amount):
    flag = flag_of(amount)
    with pytest.raises(ConfigError, match=f"^{flag} \\({amount}\\) is augmentation, .*: add --augment$"):
        recipe("mlp", **{amount: 0.1})


def test_an_augmentation_amount_is_accepted_with_augment_turned_on_in_the_same_call():
    assert recipe("mlp", augment=True, rotation_deg=15.0).rotation_deg == 15.0


def test_a_distill_weight_without_a_teacher_is_refused():
    with pytest.raises(ConfigError, match=r"--distill-weight \(distill_weight\) .*: add --teacher MODEL"):
        recipe("softmax", distill_weight=0.3)


def test_a_distill_weight_with_a_teacher_is_accepted():
    assert recipe("softmax", teacher="default", distill_weight=0.3).distill_weight == 0.3


def test_a_worker_timeout_without_multi_worker_is_refused():
    with pytest.raises(ConfigError, match=r"--worker-timeout \(worker_timeout_s\) is for --strategy multi"):
        recipe("cnn", strategy="mirrored", worker_timeout_s=10.0)


def test_a_worker_timeout_with_multi_worker_is_accepted():
    assert recipe("cnn", strategy="multi-worker", worker_timeout_s=10.0).worker_timeout_s == 10.0


def test_an_ensemble_with_a_distribution_strategy_is_refused():
    with pytest.raises(ConfigError, match=r"a strategy trains one model; an ensemble \(members > 1\)"):
        TrainConfig(members=2, strategy="mirrored")


def test_an_unknown_architecture_is_refused_listing_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'resnet'; choose one of softmax, mlp"):
        TrainConfig(model="resnet")


def test_the_names_the_module_lists_are_all_train_settings():
    assert set(RUNNING_SETTINGS) <= SETTINGS and set(AUGMENTATION_AMOUNTS) <= SETTINGS


def test_the_fields_with_help_are_exactly_the_settings_digitrec_train_offers():
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = commands.choices["train"]
    offered = {action.dest: action.option_strings for action in train._actions}
    assert {dest for dest in offered if dest in FIELDS} == SETTINGS
    for name in SETTINGS:
        assert flag_of(name) in offered[name]


@pytest.mark.parametrize("setting", ["non_digits", "restyle"])
def test_a_share_outside_zero_to_one_is_refused(setting):
    with pytest.raises(ConfigError, match="shares from 0 to 1"):
        TrainConfig(**{setting: 1.5})
