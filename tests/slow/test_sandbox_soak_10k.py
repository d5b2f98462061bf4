"""Over 10,000 runs through one pool (~100 s on 2 cores) the workers' memory stays flat and nothing
is left behind."""

from process_checks import assert_nothing_left_behind, batch, rss_kb, worker_inner_pids

from sandbox.config import SandboxConfig
from sandbox.pool import WorkerPool, run_batch


def test_ten_thousand_runs_leave_nothing_behind_and_memory_stays_flat():
    cfg = SandboxConfig(workers=2, timeout_s=3, memory_mb=512, recycle_after=0)  # never recycle: measure the leak
    pool = WorkerPool(cfg)
    try:
        statuses = [v.status for v in run_batch(batch(0, 1000), cfg, pool=pool)]
        inner = worker_inner_pids(pool)
        rss_after_1000 = [rss_kb(pid) for pid in inner]
        for start in range(1000, 10_000, 1500):
            statuses += [v.status for v in run_batch(batch(start, min(1500, 10_000 - start)), cfg, pool=pool)]
        assert len(statuses) == 10_000
        assert statuses.count("passed") == 4000 and statuses.count("infra_error") == 0
        growth = [rss_kb(pid) - before for pid, before in zip(inner, rss_after_1000)]
        assert max(growth) < 1024, f"worker RSS grew by {growth} kB over 9,000 runs"
        assert_nothing_left_behind(pool, cfg, inner)
    finally:
        pool.close()
