"""Autoscaling, simulated: how many replicas of the service, and when (for 08_deployment).

The load test measures how long one model call takes (`service_s`, e.g. about 0.02 s at
`laptop` on 2 cores). `simulate` puts that service behind a shared first-in-first-out
queue with a number of replicas, each serving one request at a time, and sends it a day
of Poisson traffic (`day_traffic`: quiet at night, a mid-day and a bigger evening peak,
24 h compressed into a few simulated minutes; with the defaults one simulated second is
one minute of the day). Every `interval_s` a `ScalingPolicy` looks at the last interval
and sets the number of replicas:

- enough replicas to do the last interval's work at `target_utilisation`, and at least
  one more when the interval's p95 latency was over the budget;
- within `min_replicas` and `max_replicas`, and no change within `cooldown_s` of the
  last one (so it sees the effect of a change before the next);
- a new replica serves only after `provisioning_s` (starting a container and loading the
  model take time), but is paid from the moment it is asked for. A removed replica
  finishes its request and leaves (those last milliseconds are not counted as cost).

`ScalingPolicy.fixed(c)` keeps c replicas all day, for comparison. What the runs show:
the policy always reacts late. It sees a ramp only in the interval after it started, and
the replicas it then asks for arrive `provisioning_s` later, so p95 latency spikes at the
start of each ramp. Head-room, a lower `target_utilisation`, absorbs part of the ramp
while the new replicas start: it buys latency, at the price of more replica-seconds.

The queue itself is textbook queueing theory: with Poisson arrivals and exponential
service times at a fixed fleet, the mean wait matches `erlang_c_wait_s` (M/M/c).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Rate = Callable[[np.ndarray], np.ndarray]  # time (s) -> arrivals per second


def day_traffic(day_s: float = 1440.0, night_rps: float = 8.0, midday_rps: float = 90.0,
                evening_rps: float = 150.0) -> Rate:
    """Arrivals per second over one day compressed into `day_s` seconds (1 h = day_s / 24).

    Lowest around 4 h, a bump peaking near 13 h and a taller, narrower one near 20:30;
    the rates at the peaks are about `midday_rps` and `evening_rps`.
    """
    def bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
        distance = (hour - centre + 12) % 24 - 12  # hours, the short way round the clock
        return np.exp(-0.5 * (distance / width) ** 2)

    def rate(t: np.ndarray) -> np.ndarray:
        hour = 24 * np.asarray(t, dtype=float) / day_s % 24
        return (night_rps + (midday_rps - night_rps) * bump(hour, 13.0, 2.5)
                + (evening_rps - night_rps) * bump(hour, 20.5, 1.5))

    return rate


def erlang_c_wait_s(arrival_rps: float, service_s: float, replicas: int) -> float:
    """Mean wait in the queue of an M/M/c system (Erlang C); inf when overloaded.

    With one replica it is the M/M/1 formula Wq = rho / (mu - lambda).
    """
    load = arrival_rps * service_s  # offered load, in busy replicas
    if load >= replicas:
        return math.inf
    below = sum(load**k / math.factorial(k) for k in range(replicas))
    top = load**replicas / math.factorial(replicas) / (1 - load / replicas)
    p_wait = top / (below + top)  # the chance an arriving request has to queue
    return p_wait / (replicas / service_s - arrival_rps)


@dataclass(frozen=True)
class ScalingPolicy:
    """When to add or remove replicas (see the module docstring); times in seconds."""

    target_utilisation: float = 0.6
    latency_budget_ms: float = 100.0
    min_replicas: int = 2  # two, so that one can fail or restart
    max_replicas: int = 10
    interval_s: float = 10.0
    cooldown_s: float = 30.0
    provisioning_s: float = 20.0

    @classmethod
    def fixed(cls, replicas: int, **kwargs: Any) -> ScalingPolicy:
        """A fleet of `replicas` that never changes."""
        return cls(min_replicas=replicas, max_replicas=replicas, **kwargs)

    def wanted(self, replicas: int, busy_s: float, p95_ms: float) -> int:
        """Replicas for the next interval, given the last one's work and p95 latency."""
        wanted = math.ceil(busy_s / (self.interval_s * self.target_utilisation))
        if p95_ms > self.latency_budget_ms:
            wanted = max(wanted, replicas + 1)
        return min(self.max_replicas, max(self.min_replicas, wanted))


@dataclass
class Simulation:
    """What `simulate` returns: per-interval rows, per-request times, totals."""

    intervals: pd.DataFrame  # t_s, arrival_rps, replicas, p95_ms, utilisation, cost_replica_s
    requests: pd.DataFrame  # arrival_s, start_s, end_s
    changes: list[tuple[float, int, int]]  # (t, replicas before, replicas after)
    latency_budget_ms: float

    def totals(self) -> dict[str, float]:
        """p95 and mean latency over the day, share of requests over budget, cost."""
        latency_ms = 1000 * (self.requests.end_s - self.requests.arrival_s)
        wait_s = self.requests.start_s - self.requests.arrival_s
        return {
            "requests": len(self.requests),
            "p95_ms": float(np.quantile(latency_ms, 0.95)),
            "mean_wait_ms": float(1000 * wait_s.mean()),
            "over_budget": float((latency_ms > self.latency_budget_ms).mean()),
            "cost_replica_s": float(self.intervals.cost_replica_s.sum()),
            "max_replicas": int(self.intervals.replicas.max()),
        }


def poisson_arrivals(rate: Rate, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of a Poisson process with a time-varying rate, sorted.

    Draws the count from the expected number (the rate's integral), spreads the arrivals
    uniformly on the integral's scale and maps them back to time, so busy times get more.
    """
    grid = np.linspace(0.0, duration_s, 10_001)
    r = np.maximum(rate(grid), 1e-9)
    expected = np.r_[0.0, np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(grid))]
    u = np.sort(rng.uniform(0.0, expected[-1], rng.poisson(expected[-1])))
    return np.interp(u, expected, grid)


def simulate(rate: Rate, duration_s: float, service_s: float,
             policy: ScalingPolicy = ScalingPolicy(), service: str = "exponential",
             seed: int = 0) -> Simulation:
    """Run the queue for `duration_s` of arrivals at `rate`, scaled by `policy`.

    `service` is "exponential" (times drawn around the mean `service_s`) or
    "deterministic" (every request takes `service_s`). Seeded: same inputs, same run.
    Each row of `intervals` describes the interval that ends at `t_s`: the replicas held
    during it (paid, starting ones included), the p95 latency of the requests that
    finished in it, the share of the paid replica-seconds spent serving, and the cost.
    """
    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(rate, duration_s, rng)
    n = len(arrivals)
    if service == "exponential":
        work = rng.exponential(service_s, n)
    elif service == "deterministic":
        work = np.full(n, float(service_s))
    else:
        raise ValueError(f"service must be 'exponential' or 'deterministic', not {service!r}")

    step = policy.interval_s
    start, end = np.empty(n), np.empty(n)
    free = [0.0] * policy.min_replicas  # a heap: when each replica can take a request
    busy: list[float] = []  # busy replica-seconds in each interval
    done: list[list[float]] = []  # latencies (ms) of the requests finishing in each interval
    rows, changes = [], []
    last_change = -math.inf

    def bucket(k: int) -> None:  # make room for interval k
        while len(busy) <= k:
            busy.append(0.0)
            done.append([])

    def decide(t: float) -> None:
        nonlocal last_change
        k = round(t / step) - 1  # the interval that ends at t
        bucket(k)
        p95 = float(np.quantile(done[k], 0.95)) if done[k] else math.nan
        before = len(free)
        rows.append((t, before, p95, busy[k] / (before * step)))
        after = policy.wanted(before, busy[k], p95)
        if after == before or t - last_change < policy.cooldown_s:
            return
        for _ in range(after - before):  # paid from now, serving after provisioning
            heapq.heappush(free, t + policy.provisioning_s)
        for _ in range(before - after):  # the replica free first finishes its request, leaves
            heapq.heappop(free)
        changes.append((t, before, after))
        last_change = t

    next_tick = step
    for i in range(n):
        # FIFO: request i takes the replica that is free first, once it has arrived;
        # decisions due before that moment happen first (they may add a replica)
        while max(arrivals[i], free[0]) >= next_tick:
            decide(next_tick)
            next_tick += step
        start[i] = max(arrivals[i], free[0])
        end[i] = start[i] + work[i]
        heapq.heapreplace(free, end[i])
        first, last = int(start[i] // step), int(end[i] // step)
        bucket(last)
        for k in range(first, last + 1):  # the work, split over the intervals it spans
            busy[k] += min(end[i], (k + 1) * step) - max(start[i], k * step)
        done[last].append(1000 * (end[i] - arrivals[i]))
    while next_tick < duration_s + step / 2:  # the rest of the day, without arrivals
        decide(next_tick)
        next_tick += step

    intervals = pd.DataFrame(rows, columns=["t_s", "replicas", "p95_ms", "utilisation"])
    edges = np.r_[0.0, intervals.t_s]
    intervals.insert(1, "arrival_rps", np.histogram(arrivals, edges)[0] / step)
    intervals["cost_replica_s"] = intervals.replicas * step
    requests = pd.DataFrame({"arrival_s": arrivals, "start_s": start, "end_s": end})
    return Simulation(intervals, requests, changes, policy.latency_budget_ms)


def plot_autoscaling(autoscaled: Simulation, fixed: Simulation,
                     day_s: float | None = None) -> Any:
    """Three aligned panels: replicas (and traffic), p95 latency vs budget, cumulative cost.

    With `day_s` (the compressed day's length) time is shown as hours of the day and cost
    as replica-hours of the real day; without it, in simulated seconds.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    scale = 24 / day_s if day_s else 1.0  # simulated seconds -> hours of the day
    unit, cost_unit = ("hour of the day", "replica-hours") if day_s else ("time (s)",
                                                                         "replica-seconds")
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    runs = [(fixed, "fixed fleet", "C1"), (autoscaled, "autoscaled", "C0")]  # autoscaled on top

    traffic = top.twinx()
    traffic.fill_between(autoscaled.intervals.t_s * scale, autoscaled.intervals.arrival_rps,
                         step="pre", color="grey", alpha=0.2, lw=0, label="traffic (right axis)")
    traffic.set(ylabel="requests / s", ylim=(0, None))
    top.set_zorder(traffic.get_zorder() + 1)  # replica lines over the traffic shading
    top.patch.set_visible(False)
    for sim, label, color in runs:
        df, totals = sim.intervals, sim.totals()
        top.step(df.t_s * scale, df.replicas, where="pre", color=color, label=label)
        middle.step(df.t_s * scale, df.p95_ms, where="pre", color=color, lw=1,
                    label=f"{label}: {totals['over_budget']:.1%} of\nrequests over budget")
        cost = df.cost_replica_s.cumsum() * scale  # replica-s x 24 / day_s = replica-hours
        bottom.plot(df.t_s * scale, cost, color=color,
                    label=f"{label}: {cost.iloc[-1]:.0f} {cost_unit}")
    middle.axhline(autoscaled.latency_budget_ms, color="k", ls="--", lw=1, label="budget")
    top.set(ylabel="replicas\n(incl. starting)", ylim=(0, None))
    middle.set(ylabel="p95 latency (ms)", yscale="log")  # spikes can be many x the budget
    middle.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    middle.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    middle.yaxis.set_minor_formatter(NullFormatter())
    bottom.set(ylabel=f"cost so far\n({cost_unit})", xlabel=unit)
    handles = [h for ax in (top, traffic) for h in ax.get_legend_handles_labels()[0]]
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False)
    for ax in (middle, bottom):
        ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False)
    top.set_title("Autoscaling vs a fixed fleet over one day")
    fig.tight_layout()
    return fig
