"""spare_cores: the cores the last minute's load left free, at least one (the explorer's top images run
on that many threads only while no run trains)."""

from __future__ import annotations

import os

import pytest

from cnnviz import runtime


def test_spare_cores_is_within_the_machine() -> None:
    assert 1 <= runtime.spare_cores() <= runtime.available_cores()


@pytest.mark.parametrize(("load", "spare"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (2.3, 1), (9.0, 1)])
def test_spare_cores_subtracts_the_load_average(monkeypatch, load: float, spare: int) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert runtime.spare_cores() == spare


def test_spare_cores_on_a_bigger_machine(monkeypatch) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: 16)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 1.0, 1.0))
    assert runtime.spare_cores() == 13
