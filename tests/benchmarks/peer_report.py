"""The report of tests/benchmarks/peers.py: medians, per-repetition ratios, the issue's targets, Markdown.

Ratios are preview-proxy / peer, taken repetition by repetition (each pair ran back to back on the
same machine), and of the medians. A target is judged on the medians.
"""

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.peer_workloads import Sample

PP, NGINX, THUMBOR = "preview-proxy", "nginx", "thumbor"
PEERS = (NGINX, THUMBOR)
# Not a peer but the ceiling of W2: the same renders in-process, with nothing around them.
IN_PROCESS = "in-process pillow-simd (draft)"
SECTION_BEGIN, SECTION_END = "<!-- peers-benchmark:begin -->", "<!-- peers-benchmark:end -->"

# scenario -> peer -> one sample per repetition
Results = dict[str, dict[str, list[Sample]]]


def _peak_rss(sample: Sample) -> str:
    """The peak RSS summed over the server's processes, where it was measured."""
    return f", peak RSS {sample['rss_mib']:.0f} MiB" if "rss_mib" in sample else ""


@dataclass(frozen=True)
class Scenario:
    """A row of the table: its headline metric (higher is better) and how one peer's median reads."""

    name: str
    metric: str
    describe: Callable[[Sample], str]


SCENARIOS = {
    "W1": Scenario("W1 hits: one cached 300 px preview, wrk, 64 connections", "rps",
                   lambda s: f"{s['rps']:,.0f} req/s, p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms"),
    "W2-1": Scenario("W2 cold: every photo once at 300 px, 1 client", "rps",
                     lambda s: f"{s['rps']:.1f} previews/s, p99 {s['p99']:,.0f} ms"),
    "W2-8": Scenario("W2 cold: every photo once at 300 px, 8 clients", "rps",
                     lambda s: f"{s['rps']:.1f} previews/s, p99 {s['p99']:,.0f} ms" + _peak_rss(s)),
    "W3": Scenario("W3 Zipf: 2,000 requests over photos x {50, 300, 1024} px, 32 clients, cold", "rps",
                   lambda s: f"{s['rps']:,.0f} req/s, p99 {s['p99']:,.0f} ms"
                             + (f", hits {s['hit_ratio']:.0%}" if "hit_ratio" in s else "") + _peak_rss(s)),
    "W4": Scenario("W4 origin path: one large original, cold cache", "mib_s",
                   lambda s: f"{s['mib_s']:,.0f} MiB/s, CPU {s['cpu_s_gib']:.2f} s/GiB, "
                             f"peak RSS {s['rss_mib']:.0f} MiB"),
}


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: preview-proxy's `metric` over the peer's (or alone) against a bound."""

    text: str
    scenario: str
    metric: str
    peer: str | None  # None: preview-proxy's own figure, not a ratio
    bound: float
    at_least: bool  # True: value >= bound; False: value <= bound


MB_IN_MIB = 1e6 / 2**20
TARGETS = (
    Target("W1 hits >= 0.65x nginx's requests/s", "W1", "rps", NGINX, 0.65, True),
    Target("W2 with 8 clients >= 1.2x thumbor's previews/s", "W2-8", "rps", THUMBOR, 1.2, True),
    Target("W2 8 clients >= 0.95x in-process", "W2-8", "rps", IN_PROCESS, 0.95, True),
    Target("W3 requests/s >= 2.5x thumbor's", "W3", "rps", THUMBOR, 2.5, True),
    Target("W3 p99 <= 0.5x nginx's", "W3", "p99", NGINX, 0.5, False),
    Target("W3 p99 <= 0.5x thumbor's", "W3", "p99", THUMBOR, 0.5, False),
    Target("W2 with 8 clients: peak RSS <= nginx's", "W2-8", "rss_mib", NGINX, 1.0, False),
    Target("W3 peak RSS <= nginx's", "W3", "rss_mib", NGINX, 1.0, False),
    Target("W4 >= 0.8x nginx's MB/s", "W4", "mib_s", NGINX, 0.8, True),
    Target("W4 peak RSS summed over the processes < 200 MiB", "W4", "rss_mib", None, 200, False),
)


def median_sample(samples: list[Sample]) -> Sample:
    """Each metric's median over the repetitions."""
    return {metric: statistics.median(s[metric] for s in samples) for metric in samples[0]}


def ratios(results: Results, scenario: str, peer: str, metric: str) -> tuple[float, list[float]] | None:
    """preview-proxy / peer for `metric`: of the medians, and of each repetition; None if not measured."""
    ours, theirs = results.get(scenario, {}).get(PP), results.get(scenario, {}).get(peer)
    if not ours or not theirs:
        return None
    median = statistics.median(s[metric] for s in ours) / statistics.median(s[metric] for s in theirs)
    return median, [a[metric] / b[metric] for a, b in zip(ours, theirs, strict=True)]


def _ratio_text(found: tuple[float, list[float]] | None) -> str:
    if found is None:
        return "n/a"
    median, each = found
    return f"**{median:.2f}**" + (f" ({', '.join(f'{r:.2f}' for r in each)})" if len(each) > 1 else "")


def table(results: Results, not_measured: dict[str, dict[str, str]]) -> list[str]:
    """The Markdown table: one row per scenario, medians per peer, ratios to each peer.
    `not_measured[scenario][peer]` says why a cell is empty."""
    # The in-process ceiling has columns of its own when it was measured (W2).
    compared = (*PEERS, IN_PROCESS) if any(IN_PROCESS in peers for peers in results.values()) else PEERS
    lines = [f"| workload | {' | '.join((*compared[:2], PP, *compared[2:]))} | "
             + " | ".join(f"{PP} / {peer.split(' ')[0]}" for peer in compared) + " |",
             "|---" * (2 + 2 * len(compared)) + "|"]
    for key, scenario in SCENARIOS.items():
        if key not in results:
            continue
        cells = []
        for peer in (*compared[:2], PP, *compared[2:]):
            samples = results[key].get(peer)
            why = not_measured.get(key, {}).get(peer, "n/a" if peer != IN_PROCESS else "")
            cells.append(scenario.describe(median_sample(samples)) if samples else why)
        cells += [_ratio_text(ratios(results, key, peer, scenario.metric)) if peer in results[key] or peer in PEERS
                  else "" for peer in compared]
        lines.append(f"| {scenario.name} | {' | '.join(cells)} |")
    return lines


def judge(results: Results) -> list[tuple[Target, str, bool | None]]:
    """Each target with what was measured and whether it is met (None: not measured in this run)."""
    verdicts: list[tuple[Target, str, bool | None]] = []
    for target in TARGETS:
        if target.peer is None:
            samples = results.get(target.scenario, {}).get(PP)
            found = (statistics.median(s[target.metric] for s in samples),
                     [s[target.metric] for s in samples]) if samples else None
        else:
            found = ratios(results, target.scenario, target.peer, target.metric)
        if found is None:
            verdicts.append((target, "not measured", None))
            continue
        value = found[0]
        met = value >= target.bound if target.at_least else value <= target.bound
        text = _ratio_text(found).replace("*", "") if target.peer else f"{value:.0f} MiB"
        if target.peer and target.metric == "rss_mib":
            text += _each_repetition_mib(results, target.scenario, target.peer)
        verdicts.append((target, text, met))
    return verdicts


def _each_repetition_mib(results: Results, scenario: str, peer: str) -> str:
    """Both sides' peak RSS in each repetition: a ratio alone can't tell which side moved."""
    runs = results[scenario]
    if len(runs[PP]) < 2:
        return ""
    each = {name: ", ".join(f"{sample['rss_mib']:.0f}" for sample in runs[name]) for name in (PP, peer)}
    return "; MiB in each repetition: " + "; ".join(f"{name} {figures}" for name, figures in each.items())


def targets_text(results: Results) -> list[str]:
    """One Markdown bullet per target measured in this run: measured value and verdict."""
    marks = {True: ": met", False: ": **not met**"}
    return [f"- {target.text}: {value}{marks[met]}" for target, value, met in judge(results) if met is not None]


def replace_marked_section(document: Path, block: list[str], name: str = "peers-benchmark") -> None:
    """Put `block` between the `name` markers of `document`. The full run's section must be there; a
    section of its own (a run of some workloads) is added after it the first time."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = document.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = len(pattern.findall(text))
    if found == 0 and name != "peers-benchmark" and text.count(SECTION_END) == 1:
        text = text.replace(SECTION_END, f"{SECTION_END}\n\n{begin}\n{end}")
    elif found != 1:
        raise SystemExit(f"{document}: expected one {begin} ... {end} section")
    document.write_text(pattern.sub(lambda _: "\n".join([begin, *block, end]), text))
