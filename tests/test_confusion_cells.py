"""One cell of the confusion matrix: exactly its images, and what the final network says about them."""

from __future__ import annotations

import pytest
import torch

from cnnviz import paths
from cnnviz.datasets.files import load_dataset
from cnnviz.images.inspection import grad_cam, predict
from cnnviz.training.cells import explain_images
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.evaluate import predict_logits
from cnnviz.training.results import cell_members, confusion_matrix
from cnnviz.training.step import normalize

IMAGES = 2000  # the shipped MNIST model answers the first few hundred all right


def _scored(name: str, data_dir, count: int = IMAGES) -> tuple:
    loaded = load_checkpoint(paths.MODELS_DIR / f"{name}.pt")
    test = load_dataset(name, "test", data_dir)
    mean = torch.tensor(loaded.mean).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = torch.tensor(loaded.std).view(1, -1, 1, 1)
    pixels, labels = test.images[:count], test.labels[:count]
    predictions = predict_logits(loaded.model, pixels, mean, std).argmax(dim=1)
    return loaded, pixels, labels, predictions, mean, std


def test_cell_members_are_exactly_the_pairs(real_data_dir) -> None:
    _, _, labels, predictions, _, _ = _scored("mnist", real_data_dir)
    matrix = confusion_matrix(predictions, labels, 10)
    truths, answers = labels.tolist(), predictions.tolist()
    seen = 0
    for true in range(10):
        for said in range(10):
            members = cell_members(predictions, labels, true, said)
            expected = [i for i in range(IMAGES) if truths[i] == true and answers[i] == said]
            assert members.tolist() == expected
            assert len(members) == matrix[true, said]
            seen += len(members)
    assert seen == IMAGES
    assert (predictions != labels).any()  # the shipped model makes a few mistakes: off-diagonal cells


def test_cell_members_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match="must match"):
        cell_members(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 0, 0)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_explained_images_equal_one_by_one_inspection(name: str, real_data_dir) -> None:
    count = 2000 if name == "mnist" else 200  # CIFAR-10: mistakes among the first 200 already
    loaded, pixels, labels, predictions, mean, std = _scored(name, real_data_dir, count)
    wrong = torch.nonzero(predictions != labels).flatten()[:6]
    chosen = torch.cat([wrong, torch.arange(4)])
    batch = normalize(pixels[chosen], mean, std)  # (N, C, H, W)
    explained = explain_images(loaded.model, batch)
    assert explained.heatmaps is not None and explained.heatmaps.shape == (len(chosen), *batch.shape[-2:])
    for row, image in enumerate(batch):
        answer = predict(loaded.model, image)  # the model's own answer, test-time views included
        probabilities, classes = answer.probabilities.topk(3)
        assert explained.top_classes[row].tolist() == classes.tolist()
        torch.testing.assert_close(explained.top_probabilities[row], probabilities, atol=1e-5, rtol=0)
        assert explained.top_classes[row, 0] == predictions[chosen[row]]
        cam = grad_cam(loaded.model, image, class_index=answer.index)
        torch.testing.assert_close(explained.heatmaps[row], cam.heatmap, atol=1e-5, rtol=0)
    # Grad-CAM of a chosen class, here the true one, for the mistakes
    true_cams = explain_images(loaded.model, batch, cam_classes=labels[chosen]).heatmaps
    for row, image in enumerate(batch):
        cam = grad_cam(loaded.model, image, class_index=int(labels[chosen[row]]))
        torch.testing.assert_close(true_cams[row], cam.heatmap, atol=1e-5, rtol=0)
