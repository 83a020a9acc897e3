"""tests.benchmarks.w3_floor's simulation, on workloads whose timing follows from their costs alone."""

import pytest

from tests.benchmarks.w3_floor import STEP_MS, simulate


def test_one_client_on_one_core_waits_for_each_render_in_turn() -> None:
    p99, end = simulate(["a", "b", "c"], {"a": 10, "b": 20, "c": 30}, 1.0, cores=1, over=0.0, shared=False,
                        clients=1)
    assert (p99, end) == (30, 60)


def test_a_request_for_a_render_in_progress_ends_with_it_and_later_ones_are_hits() -> None:
    p99, end = simulate(["a", "a", "a"], {"a": 40}, 2.0, cores=1, over=0.0, shared=False, clients=2)
    assert (p99, end) == (40, 42)  # two asked at once share the render; the third is a hit after it


def test_other_load_takes_its_share_of_the_cores() -> None:
    assert simulate(["a"], {"a": 10}, 1.0, cores=1, over=0.5, shared=False, clients=1) == (20, 20)


@pytest.mark.parametrize(("shared", "last"), [(False, 20), (True, 15)])
def test_three_renders_on_two_cores_take_turns_or_share_them(shared: bool, last: float) -> None:
    # In turn, two run at once and the third after them; shared, each gets two thirds of a core.
    p99, end = simulate(["a", "b", "c"], {"a": 10, "b": 10, "c": 10}, 1.0, cores=2, over=0.0, shared=shared,
                        clients=3)
    assert p99 == end == pytest.approx(last, abs=STEP_MS)  # to the simulation's tick


def test_shortest_first_runs_the_cheap_renders_before_the_one_asked_before_them() -> None:
    # One 1,000 ms render asked with 199 renders of 10 ms, on one core: in turn every cheap one waits for
    # it; cheapest first, they are done by 1,990 ms and only the expensive one ends after them, at 2,990 ms.
    labels = ["big", *(f"small{n}" for n in range(199))]
    costs = {"big": 1000.0} | {label: 10.0 for label in labels[1:]}
    in_turn = simulate(labels, costs, 1.0, cores=1, over=0.0, shared=False, clients=200)
    cheapest = simulate(labels, costs, 1.0, cores=1, over=0.0, shared=False, clients=200, shortest_first=True)
    assert in_turn[1] == cheapest[1] == pytest.approx(2990, abs=STEP_MS)  # the same work either way
    assert in_turn[0] == pytest.approx(2980, abs=STEP_MS)  # p99: the second slowest of 200
    assert cheapest[0] == pytest.approx(1990, abs=STEP_MS)


def test_other_load_that_takes_every_core_is_refused_rather_than_simulated_for_ever() -> None:
    with pytest.raises(ValueError, match="nothing of 2"):
        simulate(["a"], {"a": 10}, 1.0, cores=2, over=2.0, shared=False, clients=1)
