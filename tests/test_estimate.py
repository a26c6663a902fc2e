"""The Train page's time estimate: arithmetic from a net's multiply-adds and this machine's speed,
timed once per process on two small reference nets, never on the student's net."""

import time

import pytest

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.summary import summarize_spec
from cnnviz.runtime import training_threads
from cnnviz.training import estimate
from cnnviz.training.config import TrainConfig
from cnnviz.training.recipes import recipe

BIG_SPEC = "C256 C256 C256 C256 C256"  # ~1.85 G multiply-adds per MNIST image, near the size gate
# Measured on a quiet 2-core machine: the estimate was 0.6x (C256 x5) to 1.2x (vgg_classic) the timed
# steps. On a machine other jobs load, both timings move with the load, so the test times them together.
ESTIMATE_FACTOR = 3


def _mult_adds(config: TrainConfig) -> int:
    info = dataset_info(config.dataset)
    return summarize_spec(config.spec, info.image_shape, info.num_classes).total_mult_adds


def test_the_speed_line_goes_through_its_two_reference_points():
    speed = estimate.fit_speed([(10_000_000, 0.002), (1_000_000, 0.0002)])
    assert speed.cost == pytest.approx(0.0018 / 9_000_000)
    assert speed.overhead == pytest.approx(0.0002 - 1_000_000 * speed.cost)
    assert speed.images_per_second(1_000_000) == pytest.approx(5000)
    assert speed.images_per_second(10_000_000) == pytest.approx(500)


def test_a_timing_blip_never_makes_a_bigger_net_faster():
    speed = estimate.fit_speed([(1_000_000, 0.001), (10_000_000, 0.0009)])  # the big net looked faster
    assert speed.cost > 0 and speed.overhead >= 0
    assert speed.images_per_second(2_000_000_000) < speed.images_per_second(1_000_000)


def test_the_estimate_of_a_net_takes_no_step_of_that_net(monkeypatch):
    threads = training_threads()
    estimate.machine_speed("mnist", "auto", threads)  # the one-time reference timing

    def no_step(*args, **kwargs):
        raise AssertionError("the page's estimate trained a net")

    monkeypatch.setattr(estimate, "_time_training_steps", no_step)
    config = TrainConfig(dataset="mnist", spec=BIG_SPEC)
    speed = estimate.estimated_images_per_second(config, _mult_adds(config), threads)
    assert 0 < speed < estimate.estimated_images_per_second(config, 1_000_000, threads)


@pytest.mark.bench
def test_the_estimate_of_a_net_near_the_size_gate_is_quick_after_the_reference_timing():
    threads = training_threads()
    config = TrainConfig(dataset="mnist", spec=BIG_SPEC)
    estimate.machine_speed("mnist", "auto", threads)
    mult_adds = _mult_adds(config)  # the page has them from its summary
    start = time.perf_counter()
    estimate.estimated_images_per_second(config, mult_adds, threads)
    assert time.perf_counter() - start < 0.3  # generous: it is arithmetic (microseconds)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["mnist_fast", "cifar10_speed"])
def test_the_estimate_is_within_a_factor_of_the_real_timed_steps(preset):
    threads = training_threads()
    config = recipe(preset)
    ratios = []
    # Up to three tries: on a shared machine another process can take the CPU between the reference
    # timing and the real steps (seen once: 3,582 images/s predicted, 394 timed under a load of 8).
    for _ in range(3):
        estimate._timed_machine_speed.cache_clear()  # the reference timing next to the real steps
        predicted = estimate.estimated_images_per_second(config, _mult_adds(config), threads)
        timed = estimate.measure_images_per_second(config, cpu_threads=threads)
        ratios.append(predicted / timed)
        if 1 / ESTIMATE_FACTOR < ratios[-1] < ESTIMATE_FACTOR:
            break
    assert 1 / ESTIMATE_FACTOR < ratios[-1] < ESTIMATE_FACTOR, ratios
