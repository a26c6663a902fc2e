"""Saving a trained model under a student's name on a shared server: one file per name, within quotas.

The Train page saves into one folder that every student's Predict page lists, so a save here must not
overwrite another student's model, fill the disk, or take a name that passes for a shipped model's.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnviz.networks.build import SpecNet
from cnnviz.training.checkpoint import SHIPPED_MODELS, TEMP_SUFFIX, sanitize_model_name, save_checkpoint
from cnnviz.training.snapshots import RunSnapshots

STALE_TEMP_SECONDS = 300  # a save writes its temporary in well under a second; older ones were killed
# save_checkpoint's temporaries: ".<name>.pt." + mkstemp's random letters + ".tmp", nothing else
TEMP_PATTERN = re.compile(r"^\..+\.pt\.[A-Za-z0-9_]{6,}" + re.escape(TEMP_SUFFIX) + r"$")
CHECKPOINT_OVERHEAD_BYTES = 64 * 1024  # zip headers and metadata on top of the weights
# Cyrillic and Greek letters that look like Latin ones in a list of names (lower case after casefold).
LOOK_ALIKES = str.maketrans({
    "а": "a", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ո": "n", "ӏ": "l", "в": "b",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "μ": "u", "η": "n", "ϲ": "c", "ѵ": "v", "ԛ": "q", "ԝ": "w", "ɡ": "g",
})


class SaveError(ValueError):
    """A save the server refused or could not do, with one sentence for the student."""


@dataclass(frozen=True)
class SaveQuota:
    """How much one session and the whole server may save (see hosting.limits.HostLimits)."""

    per_session: int
    models: int
    megabytes: int


def default_model_name(dataset: str) -> str:
    """A name unlikely to be anyone else's: the dataset, the time and four random characters."""
    return f"{dataset}_{time.strftime('%H%M')}_{secrets.token_hex(2)}"


def look_alike_problem(name: str) -> str | None:
    """Why a (sanitized) name may not be used because it passes for a shipped model's, or None."""
    skeleton = name.casefold().translate(LOOK_ALIKES)
    for shipped in SHIPPED_MODELS:
        if skeleton == shipped:
            return f"The name {name} looks like the shipped model {shipped}: choose another name."
    return None


def remove_stale_temporaries(folder: str | os.PathLike, max_age_s: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temporaries of saves that were killed: save_checkpoint's own name pattern, older
    than ``max_age_s``. Returns what was removed (nothing when the folder is missing)."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - max_age_s
    for path in folder.iterdir():
        try:
            if TEMP_PATTERN.match(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:  # another process removed it first, or it is not ours to remove
            continue
    return removed


def saved_usage(folder: str | os.PathLike) -> tuple[int, int]:
    """The number of ``*.pt`` files in a folder and their total size in bytes."""
    folder = Path(folder)
    sizes = [p.stat().st_size for p in folder.glob("*.pt") if p.is_file()] if folder.is_dir() else []
    return len(sizes), sum(sizes)


def weights_bytes(model: SpecNet, snapshots: RunSnapshots | None = None) -> int:
    """About the size of the file a save of this model (and its run's snapshots) writes."""
    stored = 0 if snapshots is None else snapshots.nbytes()
    return CHECKPOINT_OVERHEAD_BYTES + stored + sum(
        t.numel() * t.element_size() for t in model.state_dict().values())


def quota_problem(folder: Path, model: SpecNet, saves_this_session: int, quota: SaveQuota,
                  snapshots: RunSnapshots | None = None) -> str | None:
    """Why this save would go over a quota (one sentence), or None."""
    if saves_this_session >= quota.per_session:
        return (f"This server allows {quota.per_session} saved model{'s' if quota.per_session != 1 else ''}"
                " per session, and you have saved them all.")
    count, used = saved_usage(folder)
    if count >= quota.models:
        return f"The server already holds {count} saved models, its limit: ask your host to remove some."
    size = weights_bytes(model, snapshots)
    if used + size > quota.megabytes * 1_000_000:
        return (f"This model ({size / 1e6:.1f} MB) would take the saved models past the "
                f"server's {quota.megabytes} MB: ask your host to remove some.")
    return None


def save_named_model(folder: str | os.PathLike, name: str, model: SpecNet, metadata: dict[str, Any],
                     saves_this_session: int, quota: SaveQuota,
                     snapshots: RunSnapshots | None = None) -> Path:
    """Save ``model`` as ``<folder>/<name>.pt``, never over an existing file, with its run's
    ``snapshots`` when given (the quota counts their bytes).

    Raises:
        SaveError: a bad or taken name, a quota reached, or a disk that refused the file; the
            sentence says which (an OSError's own text is kept in the exception's cause).
    """
    try:
        clean = sanitize_model_name(name)
    except ValueError as err:
        raise SaveError(str(err)) from None
    problem = look_alike_problem(clean)
    if problem:
        raise SaveError(problem)
    folder = Path(folder)
    path = folder / f"{clean}.pt"
    if path.exists():
        raise SaveError(f"A model named {clean} already exists: choose another name.")
    try:
        remove_stale_temporaries(folder)
        problem = quota_problem(folder, model, saves_this_session, quota, snapshots)
        if problem:
            raise SaveError(problem)
        return save_checkpoint(path, model, {**metadata, "name": clean}, exclusive=True, snapshots=snapshots)
    except FileExistsError as err:
        if not path.exists():  # not the link: a file stands where the models folder should be
            raise _write_error(err) from err
        raise SaveError(
            f"A model named {clean} was just saved by someone else; choose another name.") from None
    except OSError as err:
        raise _write_error(err) from err


def _write_error(err: OSError) -> SaveError:
    return SaveError(f"The server could not write the model file ({err.strerror or err}): the models "
                     "folder is full, read-only or missing. Your run is still here; tell your host.")
