"""One optimizer step: normalizing the batch, the loss, the update, and the learning-rate schedule."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.datasets.files import DatasetInfo
from cnnviz.training.config import TrainConfig
from cnnviz.training.tricks import batchnorm_shift_parameters


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float ``(x / 255 - mean) / std``; mean/std shaped (1, C, 1, 1)."""
    return (images.float() / 255.0 - mean) / std


def normalization_tensors(info: DatasetInfo, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's channel means and standard deviations on ``device``, shaped (1, C, 1, 1)."""
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    return mean, std


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate for one optimizer step under the configured schedule."""
    if config.schedule == "onecycle":
        warmup = max(1, int(config.warmup_fraction * total_steps))
        if step < warmup:
            return config.lr * (0.1 + 0.9 * step / warmup)
        return config.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    epoch = step // max(1, steps_per_epoch)
    if config.schedule == "step":
        return config.lr * config.gamma ** (epoch // config.step_epochs)
    if config.schedule == "exp":
        return config.lr * config.gamma**epoch
    return config.lr


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer over the trainable parameters. Each parameter group carries an
    ``lr_scale`` that :func:`set_learning_rate` applies (BatchNorm shifts may step faster)."""
    params = [p for p in model.parameters() if p.requires_grad]
    shifts = batchnorm_shift_parameters(model) if config.batchnorm_shift_lr != 1 else []
    shift_ids = {id(p) for p in shifts}
    groups = [{"params": [p for p in params if id(p) not in shift_ids], "lr_scale": 1.0,
               "weight_decay": config.weight_decay}]
    if shifts:
        # The same decay per step as the other weights: lr * weight_decay stays the same.
        groups.append({"params": shifts, "lr_scale": config.batchnorm_shift_lr,
                       "weight_decay": config.weight_decay / config.batchnorm_shift_lr})
    # On a GPU one fused kernel updates every parameter: small nets there are bound by kernel launches.
    fused = all(p.is_cuda for p in params) or None
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True, fused=fused)
    betas = (config.momentum, 0.999)
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=config.lr, betas=betas, fused=fused)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` times its ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class TrainingObjective(nn.Module):
    """From a batch of uint8 images and their labels to the training loss and the number the model
    got right: the part of a step that ``torch.compile`` turns into one graph on a GPU, where small
    nets are bound by how many kernels a step launches."""

    def __init__(
        self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, label_smoothing: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = to_memory_format(normalize(images, self.mean, self.std), self.mean.device)
        with autocast_for(self.mean.device):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        return loss, (logits.argmax(dim=1) == targets).sum()


def optimizer_step(
    objective: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss, backward and update on one batch of uint8 images; returns the loss and the
    number of right answers (``objective`` is a :class:`TrainingObjective`, compiled or not)."""
    if compiled:
        torch.compiler.cudagraph_mark_step_begin()  # compiled: CUDA graphs may reuse the last step's memory
    loss, correct = objective(images, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, correct


def to_memory_format(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def autocast_for(device: torch.device) -> torch.autocast:
    # bf16 keeps float32's range, so no loss scaling is needed; the CPU stays in float32.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
