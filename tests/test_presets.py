"""The preset records: every recipe, default and fastest choice is the one the code gave before the
records existed (values captured from the five places presets used to be defined in)."""

from dataclasses import asdict, fields

import pytest

from cnnviz.training.config import DEFAULT_GAMMA, LR_INPUT_MIN, MAX_LR, TrainConfig
from cnnviz.training.presets import CUSTOM_PRESET, NET_PRESETS, TRAIN_PAGE_CHOICES
from cnnviz.training.recipes import FASTEST_PRESET, default_preset, fastest_preset, find_preset, recipe

# asdict(TrainConfig()) as it was.
DEFAULTS = {
    "dataset": "mnist", "spec": "C16k5s2p2n C32n M F128", "epochs": 2, "batch_size": 256, "optimizer": "sgd",
    "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005, "label_smoothing": 0.0, "schedule": "onecycle",
    "warmup_fraction": 0.2, "step_epochs": 1, "gamma": 0.5, "val_fraction": 0.1, "evals_per_epoch": 1,
    "train_subset": None, "test_subset": None, "augment": True, "shift": None, "whiten": False,
    "mirror_tta": False, "shift_tta": False, "whiten_bias_epochs": None, "dirac": False,
    "batchnorm_scale": True, "batchnorm_shift_lr": 1.0, "lookahead_every": 0, "lookahead_start": 0.3,
    "alternating_flip": False, "seed": 0, "device": "auto", "compile": False, "test_every_epoch": False,
    "target_accuracy": None,
}
# The fields of recipe(name) that differ from DEFAULTS, as the old per-preset dict gave them.
RECIPE_CHANGES = {
    "mnist_fast": {"epochs": 1, "batch_size": 128, "label_smoothing": 0.1},
    "cifar10_fast": {"dataset": "cifar10", "spec": "C24k2p0 C32n M R32 C64n M R64 C128n M R128 G",
                     "epochs": 12, "lr": 0.2, "label_smoothing": 0.2, "whiten": True, "mirror_tta": True},
    "cifar10_speed": {"dataset": "cifar10", "spec": "C24k2p0 C32nm C32n C64nm C64n C128nm C128n G",
                      "epochs": 9, "batch_size": 128, "lr": 0.2, "label_smoothing": 0.2, "shift": 0,
                      "whiten": True, "mirror_tta": True, "shift_tta": True, "whiten_bias_epochs": 1,
                      "dirac": True, "batchnorm_scale": False, "batchnorm_shift_lr": 64, "lookahead_every": 5,
                      "alternating_flip": True},
    "cifar10_gpu": {"dataset": "cifar10", "spec": "C24k2p0 C64n M C64n C256n M C256n C256n M C256n G",
                    "epochs": 16, "batch_size": 1024, "lr": 0.8, "label_smoothing": 0.2, "shift": 2,
                    "whiten": True, "mirror_tta": True, "shift_tta": True},
    "cifar10_wide": {"dataset": "cifar10", "spec": "C24k2p0 C32n M R32 C96n M R96 C192n M R192 G",
                     "epochs": 16, "lr": 0.2, "label_smoothing": 0.2, "whiten": True, "mirror_tta": True},
    "vgg_classic": {"dataset": "cifar10", "spec": "C32 C32 M D0.25 C64 C64 M D0.25 F512 D0.5", "epochs": 15,
                    "batch_size": 128, "optimizer": "adam", "lr": 0.002, "weight_decay": 0.0},
}
OLD_FASTEST = {("mnist", "cpu"): "mnist_fast", ("mnist", "cuda"): "mnist_fast",
               ("cifar10", "cpu"): "cifar10_speed", ("cifar10", "cuda"): "cifar10_gpu"}


def _same_values(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key] == value and type(actual[key]) is type(value), (key, actual[key], value)


def test_the_defaults_of_a_training_config_are_unchanged():
    _same_values(asdict(TrainConfig()), DEFAULTS)


@pytest.mark.parametrize("name", list(RECIPE_CHANGES))
def test_every_recipe_is_the_training_config_it_was(name):
    assert list(NET_PRESETS) == list(RECIPE_CHANGES)
    _same_values(asdict(recipe(name)), {**DEFAULTS, **RECIPE_CHANGES[name]})
    assert recipe(name).spec == NET_PRESETS[name].spec and recipe(name).dataset == NET_PRESETS[name].dataset


def test_overrides_apply_on_top_of_the_recipe():
    assert recipe("mnist_fast", epochs=3).epochs == 3
    assert recipe("cifar10_speed", dataset="mnist", device="cpu").dataset == "mnist"


def test_the_custom_net_starts_from_the_recipe_the_page_gave_it():
    # The page built TrainConfig(optimizer="adam", lr=2e-3, weight_decay=0.0) and then set the dataset and
    # the typed spec; its starting spec is the custom record's, the same for both datasets.
    for dataset in ("mnist", "cifar10"):
        config = recipe(CUSTOM_PRESET.name, dataset=dataset)
        expected = {**DEFAULTS, "optimizer": "adam", "lr": 0.002, "weight_decay": 0.0, "dataset": dataset,
                    "spec": "C32 C32 M D0.25 C64 C64 M D0.25 F128 D0.5"}
        _same_values(asdict(config), expected)
    assert (*RECIPE_CHANGES, "custom") == TRAIN_PAGE_CHOICES
    assert CUSTOM_PRESET.title == "Custom spec..."


def test_the_fastest_and_default_presets_are_those_of_before():
    assert FASTEST_PRESET == OLD_FASTEST
    assert fastest_preset("cifar10", "cpu") == "cifar10_speed"
    assert fastest_preset("mnist", "cpu") == "mnist_fast"
    assert default_preset("mnist") == "mnist_fast" and default_preset("cifar10") == "cifar10_fast"


def test_each_dataset_has_one_default_and_one_fastest_preset_per_device():
    for dataset in ("mnist", "cifar10"):
        assert [p.name for p in NET_PRESETS.values() if p.default_for == dataset] == [default_preset(dataset)]
        for device in ("cpu", "cuda"):
            fastest = [p for p in NET_PRESETS.values() if device in p.fastest_on and p.dataset == dataset]
            assert len(fastest) == 1, (dataset, device)


def test_recipes_name_only_training_settings_and_leave_the_architecture_to_the_record():
    names = {f.name for f in fields(TrainConfig)}
    for preset in (*NET_PRESETS.values(), CUSTOM_PRESET):
        assert set(preset.recipe) <= names - {"spec", "dataset"}, preset.name


def test_an_unknown_preset_gets_a_friendly_error():
    with pytest.raises(ValueError, match="Unknown preset 'nope': choose one of mnist_fast, "):
        recipe("nope")
    with pytest.raises(ValueError, match="Unknown preset"):
        find_preset("nope")


def test_a_run_accepts_any_learning_rate_above_0_up_to_the_highest():
    for lr in (1e-7, LR_INPUT_MIN, 0.1, MAX_LR):  # a far too small rate is a lesson, not an error
        TrainConfig(lr=lr).validate()
    for lr in (0.0, -0.1, MAX_LR * 1.01):
        with pytest.raises(ValueError, match=f"above 0 and at most {MAX_LR:g}"):
            TrainConfig(lr=lr).validate()


def test_the_step_schedule_help_names_the_default_decay_factor():
    from cnnviz.ui.training.parts import SCHEDULE_GAMMA, SCHEDULE_HELP

    assert SCHEDULE_GAMMA["step"] == TrainConfig().gamma == DEFAULT_GAMMA
    assert f"multiply the rate by {DEFAULT_GAMMA:g} every epoch" in SCHEDULE_HELP["step"]
    assert f"multiply the rate by {SCHEDULE_GAMMA['exp']:g} every epoch" in SCHEDULE_HELP["exp"]
