"""Saving a named model on a shared server: no overwrite, quotas, clear errors, no look-alike names."""

import os
import resource
import signal
import threading
import time

import pytest
import torch

from cnnviz.datasets.files import dataset_info
from cnnviz.networks.build import build_model
from cnnviz.training.checkpoint import load_checkpoint
from cnnviz.training.saving import (
    SaveError,
    SaveQuota,
    default_model_name,
    remove_stale_temporaries,
    save_named_model,
    weights_bytes,
)

SPEC = "C8n M C16 M F32"
ROOMY = SaveQuota(per_session=5, models=50, megabytes=500)


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(SPEC, 1, 10, 28).eval()


def _metadata():
    info = dataset_info("mnist")
    return {"dataset": "mnist", "spec": SPEC, "classes": list(info.classes), "mean": list(info.mean),
            "std": list(info.std), "input_shape": [1, 28, 28], "test_accuracy": 0.5}


def test_a_save_is_loaded_back_under_its_clean_name(tmp_path):
    path = save_named_model(tmp_path, "my net", _model(), _metadata(), 0, ROOMY)
    assert path == tmp_path / "my_net.pt" and load_checkpoint(path).name == "my_net"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_net.pt"]  # no temporary left


def test_two_saves_of_one_name_at_once_one_wins_and_the_other_is_told(tmp_path):
    models = {seed: _model(seed) for seed in (1, 2)}
    start, outcomes = threading.Barrier(2), {}

    def save(seed: int) -> None:
        start.wait()
        try:
            outcomes[seed] = save_named_model(tmp_path, "same", models[seed], _metadata(), 0, ROOMY)
        except SaveError as err:
            outcomes[seed] = err

    for _ in range(5):  # each trial a fresh race (the old code lost one of them 2 times in 3)
        for path in tmp_path.glob("*.pt"):
            path.unlink()
        outcomes.clear()
        threads = [threading.Thread(target=save, args=(seed,)) for seed in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [seed for seed, result in outcomes.items() if not isinstance(result, SaveError)]
        losers = [result for result in outcomes.values() if isinstance(result, SaveError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert "same" in str(losers[0]) and "choose another name" in str(losers[0])
        saved = load_checkpoint(tmp_path / "same.pt").model.state_dict()
        for key, value in models[winners[0]].state_dict().items():
            assert torch.equal(saved[key], value), key  # the winner's file, intact
        assert sorted(p.name for p in tmp_path.iterdir()) == ["same.pt"]


def test_an_existing_name_is_refused_and_kept(tmp_path):
    first = save_named_model(tmp_path, "kept", _model(1), _metadata(), 0, ROOMY)
    before = first.read_bytes()
    with pytest.raises(SaveError, match="already exists"):
        save_named_model(tmp_path, "kept", _model(2), _metadata(), 0, ROOMY)
    assert first.read_bytes() == before


def test_the_per_session_quota(tmp_path):
    quota = SaveQuota(per_session=2, models=50, megabytes=500)
    save_named_model(tmp_path, "one", _model(), _metadata(), 1, quota)
    with pytest.raises(SaveError, match="2 saved models per session"):
        save_named_model(tmp_path, "two", _model(), _metadata(), 2, quota)
    assert not (tmp_path / "two.pt").exists()


def test_the_server_wide_count_and_size_quotas(tmp_path):
    for name in ("a", "b"):
        save_named_model(tmp_path, name, _model(), _metadata(), 0, ROOMY)
    (tmp_path / "notes.txt").write_text("not a model")  # only .pt files count
    with pytest.raises(SaveError, match="already holds 2 saved models"):
        save_named_model(tmp_path, "c", _model(), _metadata(), 0, SaveQuota(5, models=2, megabytes=500))
    (tmp_path / "b.pt").unlink()
    (tmp_path / "someone_elses.pt").write_bytes(b"0" * 2_000_000)  # 2 MB already on disk
    with pytest.raises(SaveError, match="server's 2 MB"):
        save_named_model(tmp_path, "c", _model(), _metadata(), 0, SaveQuota(5, models=50, megabytes=2))
    assert not (tmp_path / "c.pt").exists()
    assert save_named_model(tmp_path, "c", _model(), _metadata(), 0, ROOMY).is_file()


def test_a_model_bigger_than_the_room_left_is_refused_before_it_is_written(tmp_path):
    big = build_model("C8 F3000", 1, 10, 28)  # 18.8 M weights: about 75 MB
    assert weights_bytes(big) > 70_000_000
    with pytest.raises(SaveError, match=r"\(75\.\d MB\).*server's 50 MB"):
        save_named_model(tmp_path, "big", big, _metadata() | {"spec": "C8 F3000"}, 0, SaveQuota(5, 50, 50))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_told_in_a_sentence_and_leaves_nothing(tmp_path):
    """The file-size limit makes the write fail as a full disk does (ENOSPC, EFBIG: an OSError)."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, hard))
    try:
        with pytest.raises(SaveError, match="could not write the model file .*tell your host") as caught:
            save_named_model(tmp_path, "full", _model(), _metadata(), 0, ROOMY)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert isinstance(caught.value.__cause__, OSError)  # the host's log gets the real error
    assert list(tmp_path.iterdir()) == []


def test_a_models_folder_that_cannot_be_made_is_told_in_a_sentence(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(SaveError, match="could not write the model file"):
        save_named_model(blocker, "x", _model(), _metadata(), 0, ROOMY)


def test_stale_temporaries_of_killed_saves_are_cleaned(tmp_path):
    old = time.time() - 3600
    stale = tmp_path / ".killed.pt.k3x9_a2b.tmp"  # save_checkpoint's own pattern, an hour old
    fresh = tmp_path / ".running.pt.q8w2e4r6.tmp"  # a save under way right now
    foreign = tmp_path / ".notes.tmp"  # someone else's hidden file
    for path in (stale, fresh, foreign):
        path.write_bytes(b"x" * 1000)
    for path in (stale, foreign):
        os.utime(path, (old, old))
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists() and foreign.exists()
    os.utime(fresh, (old, old))
    save_named_model(tmp_path, "next", _model(), _metadata(), 0, ROOMY)  # each save cleans first
    assert not fresh.exists() and foreign.exists()


@pytest.mark.parametrize("name", ["mnіst", "MNIST", "ｍｎｉｓｔ", "сifar10", "cifar１０", "mnist"])
def test_names_that_pass_for_a_shipped_model_are_refused(tmp_path, name):
    with pytest.raises(SaveError, match="looks like the shipped model"):
        save_named_model(tmp_path, name, _model(), _metadata(), 0, ROOMY)
    assert list(tmp_path.iterdir()) == []


def test_names_near_a_shipped_one_are_fine(tmp_path):
    assert save_named_model(tmp_path, "mnist_2", _model(), _metadata(), 0, ROOMY).name == "mnist_2.pt"


def test_the_default_name_names_the_dataset_and_differs_each_time():
    names = {default_model_name("cifar10") for _ in range(20)}
    assert len(names) > 15 and all(n.startswith("cifar10_") and len(n) <= 40 for n in names)
