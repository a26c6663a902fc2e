"""The fixed pieces of the training script that :mod:`cnnviz.training.script` writes out.

Each piece is plain Python text for the generated file, the same computation as the cnnviz module
named beside it, so a student's copy trains as cnnviz does. Pieces a recipe does not use are left
out of the script. ``$NAME`` marks a value :func:`cnnviz.training.script.training_script` fills in.
"""

from __future__ import annotations

# cnnviz.datasets.files: the files of torchvision's layout, read directly (as cnnviz does), since
# torchvision's own classes refuse gzipped MNIST files without the unpacked copies next to them and
# CIFAR-10 copies whose checksums differ; torchvision downloads them when asked.
DATA = '''
def read_idx(path: Path) -> torch.Tensor:
    """One MNIST IDX file (gzipped or not) as a uint8 tensor of the shape its header gives."""
    gzipped = path.with_name(path.name + ".gz")
    if not path.exists() and not gzipped.exists():
        raise SystemExit(f"{gzipped} is missing: point --data at MNIST in torchvision's layout, "
                         "or add --download.")
    data = path.read_bytes() if path.exists() else gzip.decompress(gzipped.read_bytes())
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).view(shape)


def read_cifar10(folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 batches (pickles: read only files you trust) as uint8 images and int64 labels."""
    images, labels = [], []
    for name in files:
        if not (folder / name).exists():
            raise SystemExit(f"{folder / name} is missing: point --data at CIFAR-10 in torchvision's layout, "
                             "or add --download.")
        with open(folder / name, "rb") as file:
            batch = pickle.load(file, encoding="latin1")
        images.append(torch.from_numpy(batch["data"]))
        labels.extend(batch["labels"])
    return torch.cat(images).view(-1, 3, 32, 32), torch.tensor(labels)  # (N, C, H, W)


def load_split(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The training or test images (uint8 (N, C, H, W)) and labels, from torchvision's folder layout."""
    if DATASET == "mnist":
        raw = root / "MNIST" / "raw"
        if download and not (raw / "t10k-labels-idx1-ubyte.gz").exists():
            torchvision.datasets.MNIST(root, train=train, download=True)
        prefix = "train" if train else "t10k"
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte")[:, None]  # (N, 1, 28, 28)
        return images, read_idx(raw / f"{prefix}-labels-idx1-ubyte").long()
    folder = root / "cifar-10-batches-py"
    if download and not (folder / "test_batch").exists():
        torchvision.datasets.CIFAR10(root, train=train, download=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    return read_cifar10(folder, files)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (x / 255 - mean) / std, channels_last as the model runs."""
    mean = torch.tensor(MEAN, device=images.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, -1, 1, 1)
    x = (images.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)
'''

# cnnviz.training.augment: the whole epoch shuffled and augmented at once, in chunks, drawing from one
# generator in the same order, so a seed gives the same batches as cnnviz's trainer.
AUGMENT = '''
def shift_and_mirror(
    images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator, mirror: torch.Tensor | None,
) -> torch.Tensor:
    """Move every image up to ``pad`` pixels each way (zero fill); mirror those ``mirror`` marks (a
    random half when ``mirror`` is None and ``flip``)."""
    n, c, h, w = images.shape
    device = images.device
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))  # (N, C, H + 2p, W + 2p)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        rows = dy[:, None] + torch.arange(h, device=device)  # (N, H)
        cols = dx[:, None] + torch.arange(w, device=device)  # (N, W)
        images = padded[
            torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]  # (N, C, H, W)
    if flip:
        if mirror is None:
            mirror = torch.rand(n, generator=generator, device=device) < 0.5
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


def shuffled_epoch(
    images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, mirror: torch.Tensor | None,
    chunk: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's images in a fresh random order, each augmented as the recipe says."""
    order = torch.randperm(len(labels), generator=generator, device=labels.device)
    if SHIFT == 0 and not FLIP:
        return images[order], labels[order]
    shuffled = torch.cat([
        shift_and_mirror(images[order[start:start + chunk]], SHIFT, FLIP, generator,
                         None if mirror is None else mirror[order[start:start + chunk]])
        for start in range(0, len(order), chunk)
    ])
    return shuffled, labels[order]
'''

# cnnviz.training.step.learning_rate
SCHEDULE = {
    "onecycle": '''
def learning_rate(step: int, steps_per_epoch: int, total_steps: int) -> float:
    """One cycle: a linear rise from a tenth of the peak, then a linear fall to 0."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return LR * (0.1 + 0.9 * step / warmup)
    return LR * max(0.0, (total_steps - step) / max(1, total_steps - warmup))
''',
    "step": '''
def learning_rate(step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Step decay: the rate times GAMMA every STEP_EPOCHS epochs."""
    return LR * GAMMA ** (step // max(1, steps_per_epoch) // STEP_EPOCHS)
''',
    "exp": '''
def learning_rate(step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Exponential decay: the rate times GAMMA every epoch."""
    return LR * GAMMA ** (step // max(1, steps_per_epoch))
''',
    "constant": '''
def learning_rate(step: int, steps_per_epoch: int, total_steps: int) -> float:
    """A constant rate."""
    return LR
''',
}

# cnnviz.training.step.make_optimizer (with the BatchNorm-shift group of cnnviz.training.tricks)
OPTIMIZER = '''
def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimizer over the trainable parameters; each group's ``lr_scale`` multiplies the
    scheduled rate."""
    params = [p for p in model.parameters() if p.requires_grad]
    shifts = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.bias.requires_grad]
    shifts = shifts if BATCHNORM_SHIFT_LR != 1 else []
    shift_ids = {id(p) for p in shifts}
    groups = [{"params": [p for p in params if id(p) not in shift_ids], "lr_scale": 1.0,
               "weight_decay": WEIGHT_DECAY}]
    if shifts:
        # BatchNorm shifts step faster, with the same decay per step as the other weights.
        groups.append({"params": shifts, "lr_scale": BATCHNORM_SHIFT_LR,
                       "weight_decay": WEIGHT_DECAY / BATCHNORM_SHIFT_LR})
    fused = all(p.is_cuda for p in params) or None  # one kernel updates every parameter on a GPU
    $OPTIMIZER_CALL
'''

OPTIMIZER_CALLS = {
    "sgd": "return torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=True, fused=fused)",
    "adam": "return torch.optim.Adam(groups, lr=LR, betas=(MOMENTUM, 0.999), fused=fused)",
    "adamw": "return torch.optim.AdamW(groups, lr=LR, betas=(MOMENTUM, 0.999), fused=fused)",
}

RESIDUAL_BLOCK = '''
class ResidualBlock(nn.Module):
    """shortcut(x) + ReLU(BN(conv(ReLU(BN(conv(x)))))) with 3x3 "same" convolutions."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)
'''

# cnnviz.training.whitening
WHITENING = '''
def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Make the first layer a frozen patch-whitening filter bank (the airbench speed runs): the
    eigenvectors of the covariance of the k x k image patches, scaled by 1/sqrt(eigenvalue), and their
    negatives, so the ReLU after it loses nothing. The net starts from decorrelated inputs."""
    k = conv.kernel_size[0]
    dims = conv.in_channels * k * k
    with torch.no_grad():
        patches = images.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).to(torch.float64, memory_format=torch.contiguous_format)
        patches = patches.view(-1, dims)  # (P, C*k*k)
        patches -= patches.mean(dim=0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).float()  # (dims, dims)
        conv.weight.copy_(torch.cat([filters, -filters]).reshape(conv.weight.shape))
        if conv.bias is not None:
            conv.bias.zero_()
    conv.weight.requires_grad_(False)
'''

# cnnviz.training.tricks.dirac_init
DIRAC = '''
def dirac_init(model: nn.Module) -> None:
    """Each trainable convolution starts by passing its input through: an identity kernel in its
    first in_channels filters, so the deep plain net starts out like a shallow one."""
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.Conv2d) or not module.weight.requires_grad:
                continue
            if module.groups == 1 and all(k % 2 == 1 for k in module.kernel_size):  # odd: a centre
                nn.init.dirac_(module.weight[:module.weight.shape[1]])
'''

# cnnviz.training.tricks.freeze_batchnorm_scales
FREEZE_SCALES = '''
def freeze_batchnorm_scales(model: nn.Module) -> None:
    """BatchNorm keeps its scale at 1 and learns only its shift."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.fill_(1.0)
            module.weight.requires_grad_(False)
'''

# cnnviz.training.tricks.Lookahead and lookahead_decay
LOOKAHEAD = '''
class Lookahead:
    """A running average of the weights that the model is pulled back to every few steps: it smooths
    the noise of the last steps of a short schedule."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.average = {name: value.detach().clone() for name, value in model.state_dict().items()
                        if value.is_floating_point()}

    @torch.no_grad()
    def update(self, decay: float) -> None:
        current = self.model.state_dict()
        for name, average in self.average.items():
            average.lerp_(current[name], 1.0 - decay)
            current[name].copy_(average)


def lookahead_decay(step: int, total_steps: int) -> float:
    """How much of the average an update keeps: little early, 0.95 ** LOOKAHEAD_EVERY at the end."""
    return 0.95**LOOKAHEAD_EVERY * (step / max(1, total_steps)) ** 3
'''

# cnnviz.networks.tta and cnnviz.training.evaluate
EVALUATE = '''
def answer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The net's logits for a normalized batch$TTA_DOC"""
$TTA_BODY


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """The share of ``images`` (uint8) the model classifies right, in eval mode."""
    model.eval()
    batch_size = 1000 if device.type == "cuda" else 100
    right = 0
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size].to(device))
        with autocast(device):
            logits = answer(model, x).float()
        right += (logits.argmax(dim=1).cpu() == labels[start:start + batch_size]).sum().item()
    model.train()
    return right / max(1, len(labels))


def autocast(device: torch.device) -> torch.autocast:
    """bfloat16 on a GPU (float32's range: no loss scaling needed); float32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
'''

TTA_BODIES = {
    (False, False): (".", "    return model(x)"),
    (True, False): (
        ": the mean over the image and its mirror image\n    (the net was trained with flips).",
        "    return (model(x) + model(x.flip(-1))) / 2",
    ),
    (False, True): (
        ": half the image's, half the mean over it moved one\n    pixel up-left and down-right.",
        '''    moved = [model(shift_image(x, step)) for step in (-1, 1)]
    return model(x) / 2 + (moved[0] + moved[1]) / 4''',
    ),
    (True, True): (
        ": the mean over the image and its mirror image, half of\n    it; the other half the same for"
        " the image moved one pixel up-left and down-right.",
        '''    def views(y: torch.Tensor) -> torch.Tensor:
        return (model(y) + model(y.flip(-1))) / 2

    moved = [views(shift_image(x, step)) for step in (-1, 1)]
    return views(x) / 2 + (moved[0] + moved[1]) / 4''',
    ),
}

SHIFT_IMAGE = '''
def shift_image(images: torch.Tensor, step: int) -> torch.Tensor:
    """(N, C, H, W) images moved ``step`` (-1 or 1) pixels along both axes, the edge reflected."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 - step:1 - step + height, 1 - step:1 - step + width]
'''
