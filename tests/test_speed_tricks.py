"""The speed-run tricks, each checked against what it promises, and a real run with all of them on."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.networks.build import build_model
from cnnviz.training.augment import shuffled_epoch
from cnnviz.training.config import TrainConfig
from cnnviz.training.loop import train
from cnnviz.training.step import make_optimizer, set_learning_rate
from cnnviz.training.tricks import (
    Lookahead,
    alternating_mirror,
    batchnorm_shift_parameters,
    dirac_init,
    freeze_batchnorm_scales,
    lookahead_decay,
)


def test_dirac_init_passes_the_input_through_the_first_filters():
    model = build_model("C8 C16k5 C4", 3, 10, 12)
    assert dirac_init(model) == 3
    x = torch.randn(2, 3, 12, 12)
    first, second = model.features[0], model.features[2]
    assert torch.allclose(F.conv2d(x, first.weight, padding=1)[:, :3], x)
    y = torch.randn(2, 8, 12, 12)
    assert torch.allclose(F.conv2d(y, second.weight, padding=2)[:, :8], y)
    # the other filters keep their random start; a net narrower than its input gets what fits
    assert second.weight[8:].abs().sum() > 0
    z = torch.randn(2, 16, 12, 12)
    assert torch.allclose(F.conv2d(z, model.features[4].weight, padding=1), z[:, :4])


def test_dirac_init_leaves_frozen_and_even_kernels_alone():
    model = build_model("C24k2p0 C8", 3, 10, 8)
    whitening = model.features[0].weight
    before = whitening.detach().clone()
    whitening.requires_grad_(False)
    assert dirac_init(model) == 1
    assert torch.equal(whitening, before)


def test_frozen_batchnorm_scales_stay_at_one_and_shifts_get_their_own_rate():
    model = build_model("C8n C8n", 1, 10, 8)
    with torch.no_grad():
        model.features[1].weight.fill_(3.0)
    freeze_batchnorm_scales(model)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones(8)) and not m.weight.requires_grad for m in norms)
    assert [id(p) for p in batchnorm_shift_parameters(model)] == [id(m.bias) for m in norms]

    config = TrainConfig(lr=0.2, weight_decay=5e-4, batchnorm_shift_lr=64)
    optimizer = make_optimizer(config, model)
    others, shifts = optimizer.param_groups
    assert {id(p) for p in shifts["params"]} == {id(m.bias) for m in norms}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable
    set_learning_rate(optimizer, 0.05)
    assert others["lr"] == pytest.approx(0.05) and shifts["lr"] == pytest.approx(3.2)
    # the decay per step, lr * weight_decay, is the same for both groups
    assert shifts["lr"] * shifts["weight_decay"] == pytest.approx(others["lr"] * others["weight_decay"])


def test_lookahead_moves_the_average_and_pulls_the_model_back():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lookahead = Lookahead(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(2.0)
    lookahead.update(decay=0.75)  # the average moves a quarter of the way
    state = model.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.allclose(state[name], start[name] + 0.25), name
    assert torch.allclose(state["1.running_mean"], start["1.running_mean"] + 0.5)
    assert torch.equal(state["1.num_batches_tracked"], start["1.num_batches_tracked"])  # counts stay
    with torch.no_grad():
        model[0].weight.add_(10.0)
    lookahead.update(decay=1.0)  # only copies the average back
    assert torch.allclose(model[0].weight, start["0.weight"] + 0.25)


def test_lookahead_decay_grows_to_its_base():
    assert lookahead_decay(0, 100, every=5) == 0
    assert lookahead_decay(50, 100, every=5) == pytest.approx(0.95**5 / 8)
    assert lookahead_decay(100, 100, every=5) == pytest.approx(0.95**5)


def test_alternating_mirror_flips_each_image_once_in_two_epochs():
    first = torch.rand(1000, generator=torch.Generator().manual_seed(0)) < 0.5
    even, odd = alternating_mirror(first, 0), alternating_mirror(first, 1)
    assert torch.equal(even, alternating_mirror(first, 2))
    assert torch.equal(even ^ odd, torch.ones(1000, dtype=torch.bool))  # each image once in two epochs
    images = torch.arange(1000 * 4).view(1000, 1, 1, 4)  # each row rises, so it differs from its mirror
    labels = torch.arange(1000)
    out, out_labels = shuffled_epoch(images, labels, 0, True, torch.Generator().manual_seed(1),
                                      chunk=300, mirror=odd)
    for image, label in zip(out, out_labels, strict=True):
        expected = images[label].flip(-1) if odd[label] else images[label]
        assert torch.equal(image, expected)


@pytest.mark.slow
def test_whitening_bias_freezes_after_its_epochs(real_data_dir):
    base = dict(dataset="cifar10", spec="C24k2p0 C16n M C32n G", epochs=2, batch_size=64, lr=0.05,
                whiten=True, train_subset=640, test_subset=200, val_fraction=0.0, device="cpu")
    never = train(TrainConfig(**base, whiten_bias_epochs=0), data_dir=real_data_dir)
    assert torch.equal(never.model.features[0].bias, torch.zeros(24))
    always = train(TrainConfig(**base), data_dir=real_data_dir)
    assert always.model.features[0].bias.abs().sum() > 0


@pytest.mark.slow
def test_a_run_with_every_trick_learns(real_data_dir):
    config = TrainConfig(
        dataset="cifar10", spec="C24k2p0 C32n M C64n M C64n G", epochs=2, batch_size=128, lr=0.1,
        label_smoothing=0.2, whiten=True, train_subset=5000, test_subset=1000, val_fraction=0.1,
        device="cpu", whiten_bias_epochs=1, dirac=True, batchnorm_scale=False, batchnorm_shift_lr=16,
        lookahead_every=5, alternating_flip=True, mirror_tta=True,
    )
    result = train(config, data_dir=real_data_dir)
    assert result.test_accuracy > 0.35  # chance is 0.1
    norms = [m for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)


def test_pooling_before_relu_gives_the_same_numbers_and_gradients():
    import copy

    from cnnviz.networks.build import run_features

    torch.manual_seed(0)
    model = build_model("C24k2p0 C16n M C32n M R32 A C32 G", 3, 10, 32).train()
    twin = copy.deepcopy(model)
    x = torch.randn(8, 3, 32, 32)
    fast = model(x)  # SpecNet.forward pools before each ReLU that a max pool follows
    plain = twin.classifier(twin.features(x))  # every child in its own order
    assert torch.equal(fast, plain)
    fast.square().sum().backward()
    plain.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name
    assert torch.equal(run_features(model.features, x), twin.features(x))


def test_settings_from_the_command_line_are_typed_and_checked():
    from cnnviz.training.config import apply_settings
    from cnnviz.training.recipes import recipe

    config = apply_settings(recipe("cifar10_speed"), ["dirac=true", "lookahead-every=5", "lr=0.05",
                                                      "whiten_bias_epochs=none", "schedule=step"])
    assert (config.dirac, config.lookahead_every, config.lr, config.whiten_bias_epochs, config.schedule) == \
        (True, 5, 0.05, None, "step")
    assert apply_settings(config, []) == config
    for bad, words in (("epochs", "KEY=VALUE"), ("epochs=two", "type int"), ("epochs=0", "epochs must be"),
                       ("batchnorm_scale=2", "type bool")):
        with pytest.raises(ValueError, match=words):
            apply_settings(config, [bad])


def test_the_page_and_the_notes_describe_each_trick_in_words():
    from dataclasses import asdict

    from cnnviz.training.config import TrainConfig
    from cnnviz.training.tricks import describe_tricks

    assert describe_tricks(**asdict(TrainConfig())) == []
    lines = describe_tricks(**asdict(TrainConfig(whiten=True, whiten_bias_epochs=2, dirac=True,
                                                 batchnorm_scale=False, batchnorm_shift_lr=64,
                                                 lookahead_every=5, alternating_flip=True)))
    assert len(lines) == 6 and "learns for 2 epochs, then freezes" in lines[0]
    assert "64 times faster" in lines[3]


def test_the_estimate_times_a_run_built_with_the_recipes_tricks_without_loading_data(monkeypatch):
    from cnnviz.datasets.files import dataset_info
    from cnnviz.training import estimate, prepare
    from cnnviz.training.recipes import recipe

    def no_dataset(*args, **kwargs):
        raise AssertionError("the estimate loaded a dataset")

    monkeypatch.setattr(prepare, "load_dataset", no_dataset)
    config = recipe("cifar10_speed", device="cpu", batch_size=32)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (32,))
    run = prepare.build_run(config, dataset_info("cifar10"), torch.device("cpu"),
                            prepare.RunData(images, labels, images[:0], labels[:0]))
    norms = [m for m in run.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad for m in norms)  # BatchNorm shift-only
    assert [g["lr_scale"] for g in run.optimizer.param_groups] == [1.0, 64]  # the shifts' own rate
    assert run.whitening is not None and not run.whitening.weight.requires_grad
    second = run.model.features[2]  # the first trained conv starts as an identity (Dirac)
    assert second.weight[0, 0, 1, 1] == 1 and second.weight[0, 1].abs().sum() == 0
    assert second.weight.is_contiguous(memory_format=torch.channels_last)
    prepare.set_whitening_bias_epoch(run, config.whiten_bias_epochs)
    assert not run.whitening.bias.requires_grad  # frozen after its epochs, as the estimate times it

    threads = torch.get_num_threads()
    assert estimate.measure_images_per_second(config, steps=2, cpu_threads=1) > 0
    assert torch.get_num_threads() == threads  # the caller's setting comes back
