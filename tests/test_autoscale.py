"""Lesson 08's autoscaling simulation: the queue agrees with queueing theory, the policy
follows a ramp within its limits, and head-room buys latency at a cost."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from llm_course.deployment.autoscale import (
    ScalingPolicy,
    day_traffic,
    erlang_c_wait_s,
    plot_autoscaling,
    simulate,
)

matplotlib.use("Agg")

SERVICE_S = 0.02  # one model call at `laptop`, as measured by the load test


def constant(rps: float):
    return lambda t: np.full_like(t, rps)


def mean_wait_s(sim) -> float:
    return float((sim.requests.start_s - sim.requests.arrival_s).mean())


def ramp(t: np.ndarray) -> np.ndarray:
    """20 requests/s, up to 200 between 300 s and 500 s, down again from 800 s to 1000 s."""
    return np.interp(t, [0, 300, 500, 800, 1000, 1400], [20, 20, 200, 200, 20, 20])


def test_erlang_c_reduces_to_mm1():
    assert erlang_c_wait_s(35, SERVICE_S, 1) == pytest.approx(0.7 / (50 - 35))
    assert erlang_c_wait_s(60, SERVICE_S, 1) == float("inf")
    assert erlang_c_wait_s(70, SERVICE_S, 2) < erlang_c_wait_s(35, SERVICE_S, 1)  # pooling


@pytest.mark.parametrize("replicas", [1, 2])
def test_mean_wait_matches_queueing_theory(replicas):
    # utilisation 0.7; 400 k requests: over 20 seeds the mean wait was within 2.6 % of
    # the formula (sd 1 %); 100 k requests gave up to 7 %. About 0.6 s a run.
    rate = 35.0 * replicas
    sim = simulate(constant(rate), 400_000 / rate, SERVICE_S,
                   ScalingPolicy.fixed(replicas, interval_s=60.0), seed=0)
    assert mean_wait_s(sim) == pytest.approx(erlang_c_wait_s(rate, SERVICE_S, replicas),
                                             rel=0.05)
    assert sim.intervals.utilisation.mean() == pytest.approx(0.7, abs=0.02)


def test_deterministic_service_waits_half_as_long():
    # Pollaczek-Khinchine: M/D/1 waits rho s / (2 (1 - rho)), half of M/M/1
    # (over 20 seeds at 200 k requests: within 2.8 %, sd 1.1 %)
    sim = simulate(constant(35.0), 200_000 / 35.0, SERVICE_S,
                   ScalingPolicy.fixed(1, interval_s=60.0), service="deterministic", seed=0)
    assert mean_wait_s(sim) == pytest.approx(0.7 * SERVICE_S / (2 * 0.3), rel=0.05)


def test_follows_a_ramp_within_its_limits():
    policy = ScalingPolicy(min_replicas=2, max_replicas=6, cooldown_s=30.0, provisioning_s=20.0)
    sim = simulate(ramp, 1400, SERVICE_S, policy, seed=0)
    df = sim.intervals.set_index("t_s")
    assert df.replicas.between(2, 6).all()
    assert (df.loc[:300, "replicas"] == 2).all()
    assert (df.loc[550:800, "replicas"] == 6).all()  # wants 7 at 200 requests/s, capped
    assert (df.loc[1050:, "replicas"] == 2).all()
    ups = [t for t, before, after in sim.changes if after > before]
    downs = [t for t, before, after in sim.changes if after < before]
    assert ups and downs and 300 < min(ups) and max(ups) < 550 and 800 < min(downs) < max(downs)
    times = [t for t, _, _ in sim.changes]
    assert min(np.diff(times)) >= policy.cooldown_s
    # reacts late: the ramp's start is over the latency budget, the steady peak is not
    assert df.loc[300:450, "p95_ms"].max() > policy.latency_budget_ms
    assert df.loc[550:800, "p95_ms"].max() < policy.latency_budget_ms


def test_slower_provisioning_costs_latency():
    # measured: 1.5 % of requests over budget with 20 s to start a replica, 9.9 % with 60 s
    quick, slow = (simulate(ramp, 1400, SERVICE_S, ScalingPolicy(max_replicas=6,
                                                                   provisioning_s=p), seed=0)
                   for p in (20.0, 60.0))
    assert slow.totals()["over_budget"] > 3 * quick.totals()["over_budget"]


def test_headroom_buys_latency_at_a_cost():
    # measured over seeds 0-4: target 0.5 gave p95 64-66 ms for 4270-4320 replica-s,
    # target 0.7 gave p95 77-89 ms for 3580-3650 replica-s
    rate = day_traffic()
    roomy, tight = (simulate(rate, 1440, SERVICE_S, ScalingPolicy(target_utilisation=u),
                             seed=0).totals() for u in (0.5, 0.7))
    assert roomy["p95_ms"] < tight["p95_ms"] - 5
    assert roomy["over_budget"] < tight["over_budget"]
    assert roomy["cost_replica_s"] > 1.1 * tight["cost_replica_s"]


def test_day_traffic_shape_and_speed():
    import time

    rate = day_traffic(day_s=1440.0)
    hours = np.arange(24) * 60.0
    by_hour = rate(hours)
    assert by_hour.argmin() in (3, 4, 5) and by_hour.argmax() in (20, 21)
    assert by_hour[13] > 3 * by_hour[4]
    started = time.perf_counter()
    auto = simulate(rate, 1440, SERVICE_S, seed=0)
    took = time.perf_counter() - started
    assert took < 2.0, f"a compressed day took {took:.1f} s"  # measured: 0.13 s
    fixed = simulate(rate, 1440, SERVICE_S, ScalingPolicy.fixed(5), seed=0)
    assert auto.totals()["cost_replica_s"] < fixed.totals()["cost_replica_s"]
    fig = plot_autoscaling(auto, fixed, day_s=1440)
    assert len(fig.axes) == 4  # three panels and the traffic axis


def test_same_seed_same_run():
    a, b = (simulate(ramp, 300, SERVICE_S, seed=3) for _ in range(2))
    assert a.requests.equals(b.requests) and a.changes == b.changes
    with pytest.raises(ValueError, match="exponential"):
        simulate(ramp, 10, SERVICE_S, service="uniform")
