"""A thousand runs through one pool (forks, errors, big outputs) leave no zombie or stray process;
the 10,000-run memory check is slow/test_sandbox_soak_10k.py."""

from process_checks import assert_nothing_left_behind, batch, worker_inner_pids

from sandbox.config import SandboxConfig
from sandbox.pool import WorkerPool, run_batch


def test_a_thousand_runs_with_forks_and_errors_leave_nothing_behind():
    cfg = SandboxConfig(workers=2, timeout_s=3, memory_mb=512, recycle_after=0)
    pool = WorkerPool(cfg)
    try:
        statuses = [v.status for v in run_batch(batch(0, 1000), cfg, pool=pool)]
        assert statuses.count("passed") == 400 and statuses.count("infra_error") == 0
        assert_nothing_left_behind(pool, cfg, worker_inner_pids(pool))
    finally:
        pool.close()
