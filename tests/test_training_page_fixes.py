"""Defects of the Train page found by an independent review (issue 19, item 8), each pinned."""

import pytest
import torch
import torch.nn.functional as F

from cnnviz.datasets.files import DATASETS
from cnnviz.training.config import TrainConfig
from cnnviz.training.results import smoothed_loss_floor
from cnnviz.ui.training.parts import mistake_width, smoothing_note, summary_rows


@pytest.mark.parametrize("smoothing, classes", [(0.1, 10), (0.2, 10), (0.3, 4)])
def test_the_smoothed_loss_floor_is_the_loss_of_a_net_that_answers_the_smoothed_targets(smoothing, classes):
    target = torch.full((classes,), smoothing / classes, dtype=torch.float64)
    target[2] += 1 - smoothing
    logits = target.log().unsqueeze(0)  # softmax(log p) = p: the best answer the smoothed loss allows
    best = F.cross_entropy(logits, torch.tensor([2]), label_smoothing=smoothing).item()
    assert smoothed_loss_floor(smoothing, classes) == pytest.approx(best, abs=1e-9)
    worse = F.cross_entropy(logits * 1.5, torch.tensor([2]), label_smoothing=smoothing).item()
    assert worse > best  # surer than the targets costs more
    assert smoothed_loss_floor(0.0, classes) == 0.0


def test_a_run_with_smoothing_says_why_its_training_loss_sits_above_the_validation_loss():
    assert smoothing_note(TrainConfig(label_smoothing=0.0), 10) is None
    note = smoothing_note(TrainConfig(label_smoothing=0.2), 10)
    assert "not one-hot" in note and "82%" in note and "dropout and augmentation" in note
    assert f"below {smoothed_loss_floor(0.2, 10):.2f}" in note and "below 0.87" in note


def test_the_layer_table_shows_the_formula_before_it_scrolls_out_of_sight():
    from cnnviz.networks.summary import summarize_spec

    rows = summary_rows(summarize_spec("C8 M F10", (1, 28, 28), 10))
    assert list(rows[0])[:4] == ["layer", "type", "parameters", "formula"]
    assert rows[0]["formula"] and rows[0]["parameters"] == 8 * 9 + 8


def test_mistake_captions_get_room_for_the_longest_class_name():
    cifar, mnist = DATASETS["cifar10"], DATASETS["mnist"]
    width = mistake_width(cifar.classes, 32)
    assert width % 32 == 0 and width >= 8 * len("automobile")  # 96: "automobile" on one line
    assert mistake_width(mnist.classes, 28) % 28 == 0 and mistake_width(mnist.classes, 28) >= 64
