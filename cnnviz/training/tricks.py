"""Speed-run tricks the trainer can switch on (ideas from the airbench line of CIFAR-10 speed runs).

Each one changes how a net learns, not what it is: the spec still says which layers there are.

- :func:`dirac_init`: each convolution starts by passing its input through (an identity kernel in
  its first ``in_channels`` filters), so a deep plain net starts out like a shallow one.
- :func:`freeze_batchnorm_scales`: BatchNorm keeps its scale at 1 and learns only its shift.
- :func:`batchnorm_shift_parameters`: those shifts, which the optimizer may step faster.
- :class:`Lookahead`: every few steps the weights are pulled back towards a running average of
  themselves, which smooths the noise of the last steps of a short schedule.
- :func:`alternating_mirror`: half the images are mirrored in even epochs, the other half in odd
  ones, so every image is seen both ways in two epochs instead of by chance.
"""

from __future__ import annotations

import torch
from torch import nn


def dirac_init(model: nn.Module) -> int:
    """Set the first ``in_channels`` filters of every trainable convolution to an identity kernel.

    Returns how many convolutions were changed. Kernels of even size have no centre and are skipped.
    """
    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.Conv2d) or not module.weight.requires_grad:
                continue
            if module.groups != 1 or any(k % 2 == 0 for k in module.kernel_size):
                continue
            weight = module.weight
            nn.init.dirac_(weight[:weight.shape[1]])  # zeroes those filters, then a 1 at each one's centre
            changed += 1
    return changed


def freeze_batchnorm_scales(model: nn.Module) -> None:
    """Keep every BatchNorm's scale (its ``weight``) at 1: it is no longer trained."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
            with torch.no_grad():
                module.weight.fill_(1.0)
            module.weight.requires_grad_(False)


def batchnorm_shift_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The BatchNorm shifts (``bias``) that are trained."""
    return [
        module.bias for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and module.bias is not None and module.bias.requires_grad
    ]


class Lookahead:
    """A running average of a model's weights that the model is pulled back to.

    ``update(decay)`` moves the average ``1 - decay`` of the way towards the current weights, then
    copies the average into the model (floating-point parameters and BatchNorm statistics alike).
    ``decay=1`` only copies the average back.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.average = {
            name: value.detach().clone() for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    @torch.no_grad()
    def update(self, decay: float) -> None:
        current = self.model.state_dict()
        for name, average in self.average.items():
            average.lerp_(current[name], 1.0 - decay)
            current[name].copy_(average)


def lookahead_decay(step: int, total_steps: int, every: int, base: float = 0.95, power: float = 3.0) -> float:
    """How much of the average a Lookahead update keeps: small early, ``base ** every`` at the end,
    so training moves fast at first and averages strongly as the learning rate falls."""
    return base**every * (step / max(1, total_steps)) ** power


def alternating_mirror(first_epoch: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which images to mirror in ``epoch``: a random half (``first_epoch``, a bool mask) in even
    epochs and the other half in odd ones."""
    return first_epoch if epoch % 2 == 0 else ~first_epoch


def describe_tricks(
    *, whiten: bool = False, whiten_bias_epochs: int | None = None, dirac: bool = False,
    batchnorm_scale: bool = True, batchnorm_shift_lr: float = 1.0, lookahead_every: int = 0,
    alternating_flip: bool = False, **_: object,
) -> list[str]:
    """One short sentence for each trick a training config switches on (pass ``asdict(config)``)."""
    lines = []
    if whiten:
        frozen = "" if whiten_bias_epochs is None else (
            f"; its bias learns for {whiten_bias_epochs} epoch{'' if whiten_bias_epochs == 1 else 's'}, "
            "then freezes, so no gradient is needed below the second layer")
        lines.append("the first layer is a fixed patch-whitening filter bank" + frozen)
    if dirac:
        lines.append("convolutions start as identity kernels, so the deep net starts out like a shallow one")
    if not batchnorm_scale:
        lines.append("BatchNorm learns only its shift, its scale stays 1")
    if batchnorm_shift_lr != 1:
        lines.append(f"BatchNorm shifts step {batchnorm_shift_lr:g} times faster")
    if lookahead_every:
        lines.append(f"every {lookahead_every} steps the weights are pulled towards their running average")
    if alternating_flip:
        lines.append("each image is mirrored in every other epoch, not at random")
    return lines
