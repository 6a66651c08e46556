"""Datasette's event loop first on the CPU, so Forage's answers don't queue behind the pipeline.

On two cores the pipeline (loader, advance, dbt ticks, PostgreSQL) keeps both busy, and a
Forage request waits for a core before its ~40 µs of work. Measured 2026-12-08 on `pulse up`
(20 submissions/s, wrk at 600 requests/s, 100 connections, the machine loaded to a load
average of ~10 by other work): p99 35–62 ms at normal priority; 42–53 ms at nice −20 and
38–44 ms with a 0.1 ms EEVDF slice (neither changes how soon a woken task runs much);
12–16 ms with the event-loop thread under SCHED_FIFO.

So only the event-loop thread (the one that answers /forage/, the health URL and the pages)
is raised to SCHED_FIFO priority 1, with SCHED_RESET_ON_FORK: every thread it starts —
Datasette's SQL threads, where analysts' queries run for up to `sql_time_limit_ms` — starts
back at normal priority, so a slow query cannot take a core from the pipeline. The loop's
own work is bounded (a memo hit per request, a recompute per publication), and the kernel
keeps 5% of each second for normal tasks whatever a real-time thread does
(`kernel.sched_rt_runtime_us`).

Allowed for root, CAP_SYS_NICE, or a RLIMIT_RTPRIO ≥ 1 (systemd's `LimitRTPRIO=1`,
deploy/pisa-pulse-serve.service). Otherwise, or with PULSE_SERVE_PRIORITY=normal, the loop
runs at normal priority and `pulse serve` says so.
"""

from __future__ import annotations

import os

ENV = "PULSE_SERVE_PRIORITY"  # "realtime" (default) or "normal"
RT_PRIORITY = 1  # the lowest real-time priority: above every normal task, below the kernel's


def favour_event_loop() -> str:
    """Raise the calling thread (call it from the thread that will run the event loop, before
    it starts threads); returns a line saying what it did, for the log."""
    wanted = os.environ.get(ENV, "realtime").strip().lower()
    if wanted == "normal":
        return f"event loop at normal priority ({ENV}=normal)"
    if wanted != "realtime":
        raise SystemExit(f"{ENV} must be 'realtime' or 'normal', not {wanted!r}")
    if not hasattr(os, "SCHED_FIFO"):
        return "event loop at normal priority (no real-time scheduling on this system)"
    try:
        os.sched_setscheduler(
            0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(RT_PRIORITY)
        )
    except PermissionError:
        return (
            "event loop at normal priority (real-time scheduling not allowed: run as root, "
            "with CAP_SYS_NICE or with LimitRTPRIO=1; latency under load is higher)"
        )
    return f"event loop at real-time priority (SCHED_FIFO {RT_PRIORITY}; its threads normal)"


def describe(tid: int) -> str:
    """'fifo' or 'other' for a thread id (tests and `pulse status`)."""
    policy = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return "fifo" if policy == getattr(os, "SCHED_FIFO", -1) else "other"
