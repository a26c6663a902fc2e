"""How much memory a training run will need at its peak, predicted before anything big is allocated.

A server admits a run by this prediction (see :mod:`cnnviz.training.jobs`), so a student's settings
can never take the machine's memory: the size gate of :mod:`cnnviz.networks.summary` looks at one
image, but a step holds the activations of the whole batch.

What a CPU step holds at its peak, each part measured against a real step (tests/test_memory.py):

- the weights, their gradients and the optimizer's state (SGD momentum: one copy; Adam: two);
- every tensor autograd saves for the backward pass, for each image of the batch. They are counted
  exactly: one forward pass of one and of two images with ``saved_tensors_hooks``, each storage once
  (an in-place ReLU shares its input's storage), the difference being one image's share;
- during the backward pass, the gradient of the largest activation for the whole batch;
- the run's copy of the training images (uint8) and its shuffled epoch;
- before the first step, where the recipe whitens, the float64 patches of the whitening statistics
  beside the first copy of the images (the larger of that phase and the steps' counts, not both);
- about 140 MB that a run holds whatever the net: PyTorch's CPU scratch space and thread pool, and
  the allocations of building, checking and scoring that the allocator keeps (measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch
from torch import nn

from cnnviz.datasets.files import DatasetInfo, dataset_info
from cnnviz.networks.build import build_model
from cnnviz.networks.summary import summarize_spec, training_size_problem
from cnnviz.training.config import TrainConfig
from cnnviz.training.whitening import WHITENING_IMAGES, whitening_layer

MB = 2**20
RUNTIME_SCRATCH_BYTES = 140 * MB  # what any run holds beyond its parts, measured on a 2-core CPU
OPTIMIZER_COPIES = {"sgd": 1, "adam": 2, "adamw": 2}  # state tensors per trainable parameter
FLOAT_BYTES = 4
# A run holds the training images twice (its seeded split and the epoch being trained) and briefly a
# third time while the next epoch is shuffled and augmented.
TRAIN_IMAGE_COPIES = 3
LABEL_BYTES = 8  # int64


@dataclass(frozen=True)
class RunMemory:
    """A run's predicted peak memory, part by part (bytes)."""

    weights: int
    gradients: int
    optimizer_state: int
    saved_activations: int  # for the whole batch
    backward_peak: int  # the gradient of the largest activation, for the whole batch
    data: int  # the run's copies of the training images and labels
    split_data: int  # the first of them, the only one held while the whitening statistics are computed
    whitening: int  # the whitening statistics' transient before the first step (0 without whitening)
    scratch: int
    batch_size: int
    per_image: int  # what one more image in the batch adds (saved activations and its gradient)

    @property
    def total(self) -> int:
        step = self.gradients + self.optimizer_state + self.saved_activations + self.backward_peak
        return self.weights + max(self.data + self.scratch + step, self.split_data + self.whitening)

    def largest_batch_within(self, budget: int) -> int:
        """The largest batch size whose run fits in ``budget`` bytes (0 when not even one image fits)."""
        step_budget = budget - self.weights - self.data - self.scratch
        fixed = self.gradients + self.optimizer_state
        return max(0, (step_budget - fixed) // max(1, self.per_image))

    def describe(self) -> str:
        """One line for a student, e.g. 'about 1.2 GB: 1.0 GB of activations for 128 images, ...'."""
        return (f"about {readable_bytes(self.total)} at its peak: {readable_bytes(self.saved_activations)} "
                f"of activations for a batch of {self.batch_size}, "
                f"{readable_bytes(self.weights + self.gradients + self.optimizer_state)} of weights, "
                f"gradients and optimizer state, {readable_bytes(self.data)} of training images")


def default_training_memory(gpu_count: int) -> int:
    """What a server's training runs may use together when the host does not say: 80% of the first
    GPU's memory where there is a GPU, else half of the machine's RAM (the rest stays for the pages,
    the shared datasets and the system)."""
    if gpu_count > 0 and torch.cuda.is_available():
        return int(0.8 * torch.cuda.get_device_properties(0).total_memory)
    return psutil.virtual_memory().total // 2


def readable_bytes(count: int) -> str:
    """'950 MB', '2.3 GB'."""
    if count >= 1000 * MB:
        return f"{count / 2**30:.1f} GB"
    return f"{max(1, round(count / MB))} MB"


def saved_bytes_per_image(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[int, int]:
    """(bytes autograd saves for one more image, bytes of the largest saved activation of one image).

    Runs the model in training mode on two and on three zero images (BatchNorm after a global pool
    needs two to train), counting each saved storage once; the weights, which are the model's own, are
    not counted.
    """
    was_training = model.training
    model.train()
    try:
        two, three = (_saved_storages(model, torch.zeros(batch, *input_shape)) for batch in (2, 3))
    finally:
        model.train(was_training)
    return max(0, sum(three) - sum(two)), max(three, default=0) // 3


def _saved_storages(model: nn.Module, images: torch.Tensor) -> list[int]:
    seen: dict[int, int] = {}
    # A layer may save a view of its weight (a Linear keeps weight.t()): the model's own, not the batch's.
    own = {tensor.untyped_storage().data_ptr() for tensor in [*model.parameters(), *model.buffers()]}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images.contiguous(memory_format=torch.channels_last))
    return list(seen.values())


def predict_run_memory(model: nn.Module, config: TrainConfig, info: DatasetInfo) -> RunMemory:
    """The peak memory of training ``model`` (built for ``info``'s images) as ``config`` says.

    Builds nothing: ``model`` is the net the summary already built (at most the size gate's 20 M
    parameters), and two forward passes of a few images measure what it saves.
    """
    per_image, largest = saved_bytes_per_image(model, info.image_shape)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    train_images = min(config.train_subset or info.train_size, info.train_size)
    kept = train_images - int(round(config.val_fraction * train_images))
    batch = min(config.batch_size, kept)
    image_bytes = info.image_shape[0] * info.image_shape[1] * info.image_shape[2]
    return RunMemory(
        weights=weights,
        gradients=trainable,
        optimizer_state=trainable * OPTIMIZER_COPIES.get(config.optimizer, 2),
        saved_activations=per_image * batch,
        backward_peak=largest * batch,
        data=TRAIN_IMAGE_COPIES * kept * image_bytes + 2 * kept * LABEL_BYTES,
        split_data=train_images * (image_bytes + LABEL_BYTES),
        whitening=_whitening_bytes(model, config, info, kept),
        scratch=RUNTIME_SCRATCH_BYTES,
        batch_size=batch,
        per_image=per_image + largest,
    )


def _whitening_bytes(model: nn.Module, config: TrainConfig, info: DatasetInfo, images: int) -> int:
    """The float64 patches and the normalized float32 images of the whitening statistics."""
    layer = whitening_layer(model, config.whiten)
    if layer is None:
        return 0
    k = layer.kernel_size[0]
    channels, height, width = info.image_shape
    count = min(WHITENING_IMAGES, images)
    patches = count * (height - k + 1) * (width - k + 1) * channels * k * k
    return patches * 8 + count * channels * height * width * FLOAT_BYTES


def memory_problem(estimate: RunMemory, budget: int, free: int | None = None) -> str | None:
    """Why this run cannot be admitted (one sentence saying what to shrink), or None when it fits.

    Args:
        budget: the most one run may use on this server (bytes).
        free: what the server has left for training right now; None to check the budget alone.
    """
    if estimate.total > budget:
        largest = estimate.largest_batch_within(budget)
        advice = (f"use a batch of at most {largest}" if largest >= 1 else
                  "use fewer filters in the first layers, or a pool or stride earlier")
        return (f"This run would need {estimate.describe()}; this server allows "
                f"{readable_bytes(budget)} per run. To fit, {advice}.")
    if free is not None and estimate.total > free:
        return (f"This run would need {readable_bytes(estimate.total)} and the runs training now leave "
                f"{readable_bytes(free)} free: it waits until one of them ends.")
    return None


def predict_config_memory(config: TrainConfig) -> RunMemory:
    """:func:`predict_run_memory` for the net ``config`` names, built on the CPU for the prediction.

    Raises:
        ValueError: when the net is over the size gate (nothing is allocated for it) or its spec is bad.
    """
    info = dataset_info(config.dataset)
    channels, size, _ = info.image_shape
    too_big = training_size_problem(summarize_spec(config.spec, info.image_shape, info.num_classes))
    if too_big:
        raise ValueError(too_big)
    model = build_model(config.spec, channels, info.num_classes, size)
    return predict_run_memory(model, config, info)


def memory_config(config: TrainConfig) -> TrainConfig:
    """``config`` with only the settings its memory depends on, the others at their defaults (a cache
    key: runs that differ only in their learning rate or seed need the same memory)."""
    return TrainConfig(dataset=config.dataset, spec=config.spec, batch_size=config.batch_size,
                       optimizer=config.optimizer, train_subset=config.train_subset,
                       val_fraction=config.val_fraction, whiten=config.whiten)


def admission_problem(config: TrainConfig, budget: int) -> str | None:
    """Why a run of ``config`` may not start on a server that allows ``budget`` bytes per run (one
    sentence), or None when it fits."""
    try:
        estimate = predict_config_memory(config)
    except ValueError as err:
        return str(err)
    return memory_problem(estimate, budget)


def measure_run_peak(config: TrainConfig, data_dir: str | None = None, steps: int = 3) -> int:
    """Bytes a real run of ``config`` adds to its process at its peak, over its first ``steps`` steps
    (Linux only: it resets and reads the kernel's high-water mark of the process's memory).

    Run it in a fresh process: the datasets are loaded first and not counted, as on a server where
    every run shares them.
    """
    import threading

    from cnnviz.datasets.files import load_dataset
    from cnnviz.training.loop import train

    info_name = config.dataset
    load_dataset(info_name, "train", data_dir)
    load_dataset(info_name, "test", data_dir)
    stop = threading.Event()

    def stop_after(progress) -> None:
        if progress.step >= steps:
            stop.set()

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak resident size (VmHWM) to the current size
    before = _proc_status_kb("VmRSS")
    train(config, progress=stop_after, stop=stop, data_dir=data_dir, report_interval=0.0)
    return (_proc_status_kb("VmHWM") - before) * 1024


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")
