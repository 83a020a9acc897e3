"""Benchmark: how low W3's p99 can go on this machine, whatever the order the renders run in.

W3 (tests.benchmarks.peers) is 2,000 requests over 78 previews from 32 clients on a cold server. Its tail
is the time the misses wait for the CPU: the machine is busy from the first request to the last. This
measures what the CPU has to do, then replays W3's requests against ideal schedulers with that work:

1. Each preview rendered alone, one request at a time, in the order W3 first asks for it: its time is
   its cost. Then all 2,000 requests again, all hits, from one client: the cost of a hit (client and
   server together).
2. W3 as the peers run it, on a fresh server: its p99, and the CPU of the server and the client. What the
   CPU did beyond the renders and the hits, per second of the run, is the load that shares the cores
   with the renders (`over`, in cores: the joiners, the store writes, the hand-overs).
3. The same requests, 32 closed-loop clients, simulated on the cores with that work: renders first come
   first served, one per core at a time (`fifo`), the cheapest waiting render first, one per core at a
   time (`shortest`, an order that knows each render's cost before it starts), or all sharing the cores
   (`shared`); hits and the rest of the load take their CPU first.

Run from the checkout:  .venv/bin/python -m tests.benchmarks.w3_floor [--repetitions 3]
"""

import argparse
import os
import resource
import statistics
import time
from collections.abc import Iterator

import aiohttp
import uvloop

from tests.benchmarks import peer_workloads as load
from tests.benchmarks import peers
from tests.benchmarks.harness import cpu_seconds, percentiles, process_tree
from tests.benchmarks.peer_servers import Peer

STEP_MS = 0.25  # the simulation's clock tick
MOST_MS = 600_000.0  # simulated time after which a run that can't end (no CPU left for renders) stops


def _label(preview: load.Preview) -> str:
    return f"{preview.key}@{preview.width}"


async def _one_at_a_time(server: Peer, requests: list[load.Preview]) -> tuple[dict[str, float], float]:
    """Each preview's render alone (ms, in first-asked order; its request's time less a hit's), and one
    hit's time (ms, all requests again), which is the round trip every request has."""
    costs: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for preview in requests:
            if _label(preview) not in costs:
                started = time.perf_counter()
                async with session.get(server.preview_url(preview.width, preview.key)) as response:
                    await response.read()
                costs[_label(preview)] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        for preview in requests:
            async with session.get(server.preview_url(preview.width, preview.key)) as response:
                await response.read()
    hit_ms = (time.perf_counter() - started) * 1000 / len(requests)
    return {label: max(0.0, took - hit_ms) for label, took in costs.items()}, hit_ms


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measured_w3(bench: peers.Bench, requests: list[load.Preview]) -> tuple[float, float, float]:
    """W3 as the peers run it: p99 (ms), wall time (s), and the CPU of server and client (s)."""
    with bench.fresh(peers.PP) as server:
        uvloop.run(load.warm_up(server, peers.WARMUP_KEY))
        tree = process_tree(server.pid)
        before, own = {pid: cpu_seconds(pid) for pid in tree}, _own_cpu()
        started = time.perf_counter()
        sample = uvloop.run(load.previews(server, requests, peers.ZIPF_CLIENTS))
        wall = time.perf_counter() - started
        used = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in process_tree(server.pid))
    return sample["p99"], wall, used + _own_cpu() - own


def simulate(labels: list[str], costs: dict[str, float], hit_ms: float, cores: int, over: float,
             shared: bool, clients: int = peers.ZIPF_CLIENTS, shortest_first: bool = False) -> tuple[float, float]:
    """`labels` asked in order by `clients` closed-loop clients, on `cores` of which `over` are taken by
    other work. A request whose preview is rendered costs `hit_ms` of CPU; one whose render runs or waits
    joins it. Renders not `shared` take a core each, in the order asked or, `shortest_first`, cheapest
    first. Returns the p99 (ms) and when the last request ends (ms); ValueError if the renders get no
    CPU (`over` as large as `cores`), which no amount of simulated time would end."""
    if over >= cores:
        raise ValueError(f"other load of {over} cores leaves nothing of {cores} for the renders")
    remaining: dict[str, float] = {}  # renders asked and not done: CPU ms left
    done: set[str] = set()
    waiting: dict[str, list[tuple[int, float]]] = {}  # render -> its requests: the client, and when asked
    queue: list[str] = []  # renders not started, in the order asked
    running: list[str] = []
    free_at = [0.0] * clients  # when each client asks again (inf: it waits for a render)
    latencies: list[float] = []
    asked, now, last_end = 0, 0.0, 0.0
    while (asked < len(labels) or waiting) and now < MOST_MS:
        hits_ms = 0.0
        for client, ready in enumerate(free_at):
            while ready <= now and asked < len(labels):
                label, asked = labels[asked], asked + 1
                if label in done:
                    latencies.append(hit_ms)
                    hits_ms += hit_ms
                    ready = now + hit_ms
                    last_end = max(last_end, ready)
                    continue
                if label not in remaining:
                    remaining[label] = costs[label]
                    queue.append(label)
                waiting.setdefault(label, []).append((client, now))
                ready = float("inf")
            free_at[client] = ready
        if shared:
            running.extend(queue)
            queue.clear()
        if shortest_first:
            queue.sort(key=costs.__getitem__)  # stable: among equal costs, the order asked
        while queue and len(running) < cores:
            running.append(queue.pop(0))
        capacity = max(0.0, (cores - over) * STEP_MS - hits_ms)
        share = min(STEP_MS, capacity / len(running)) if running else 0.0
        now += STEP_MS
        for label in list(running):
            remaining[label] -= share
            if remaining[label] <= 0:
                running.remove(label)
                done.add(label)
                for client, since in waiting.pop(label):
                    latencies.append(now - since)
                    free_at[client] = last_end = now
    return percentiles([latency / 1000 for latency in latencies])[1], last_end


def _rows(costs: dict[str, float], hit_ms: float, labels: list[str], over: float) -> Iterator[str]:
    cores = os.cpu_count() or 1
    for name, shared, shortest in (("fifo", False, False), ("shortest", False, True), ("shared", True, False)):
        for load_over in (0.0, over):
            p99, end = simulate(labels, costs, hit_ms, cores, load_over, shared, shortest_first=shortest)
            yield f"  {name:8s} other load {load_over:.2f} cores: p99 {p99:4.0f} ms, last request ends at {end:5.0f} ms"


def main() -> None:
    """Print the costs measured, W3's measured p99, and the simulated floors."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repetitions", type=int, default=3)
    repetitions = parser.parse_args().repetitions
    photos = sorted(peers.CORPUS.glob("*.jpg"))
    with peers.bench_ground(photos, None, True) as bench:
        requests = load.zipf_requests(bench.keys, peers.ZIPF_REQUESTS)
        labels = [_label(preview) for preview in requests]
        runs = []
        for _ in range(repetitions):
            with bench.fresh(peers.PP) as server:
                uvloop.run(load.warm_up(server, peers.WARMUP_KEY))
                costs, hit_ms = uvloop.run(_one_at_a_time(server, requests))
            runs.append((costs, hit_ms, *_measured_w3(bench, requests)))
    costs = {label: statistics.median(run[0][label] for run in runs) for label in runs[0][0]}
    hit_ms = statistics.median(run[1] for run in runs)
    p99 = statistics.median(run[2] for run in runs)
    work_s = (sum(costs.values()) + hit_ms * len(labels)) / 1000  # every request's round trip, misses too
    overs = [max(0.0, (cpu - work_s) / wall) for *_, wall, cpu in runs]
    print(f"{len(costs)} previews rendered one at a time: {sum(costs.values()):.0f} ms in all, the largest "
          + ", ".join(f"{label} {cost:.0f} ms" for label, cost in sorted(costs.items(), key=lambda kv: -kv[1])[:3]))
    print(f"a hit, client and server: {hit_ms:.2f} ms; W3 needs {work_s:.2f} s of CPU for renders and hits")
    print(f"W3 measured: p99 {p99:.0f} ms (" + ", ".join(f"{run[2]:.0f}" for run in runs) + "), "
          + "CPU beyond renders and hits " + ", ".join(f"{over:.2f}" for over in overs) + " cores")
    print("simulated on this machine's cores:")
    for row in _rows(costs, hit_ms, labels, statistics.median(overs)):
        print(row)


if __name__ == "__main__":
    main()
