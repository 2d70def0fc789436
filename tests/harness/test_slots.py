"""A stage that holds a heavy slot can ask for a second one without ever waiting for it: it gets one
only while one is free, and gives it back; with one heavy slot it never gets a second, so a check
that prepares beside itself cannot deadlock a batch (harness.pipelines.score)."""

from __future__ import annotations

import threading

from harness.slots import Capacity, Slots


def slots(heavy: int) -> Slots:
    return Slots(Capacity(in_flight=heavy, heavy=heavy, light=0, gpus=(), reasons=()))


def test_a_spare_heavy_slot_is_given_only_when_free_and_given_back():
    one = slots(1)
    with one.heavy():
        with one.spare_heavy() as spare:
            assert spare is False
    two = slots(2)
    with two.heavy():
        with two.spare_heavy() as spare:
            assert spare is True
            taken = threading.Event()
            threading.Thread(target=lambda: two._heavy.acquire(timeout=0.2) and taken.set()).start()
            assert not taken.wait(0.5), "both slots are held"
        with two.spare_heavy() as again:
            assert again is True, "the spare slot was given back"
