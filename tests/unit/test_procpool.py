"""spawner.procpool: jobs on fresh worker processes, results in order, failures raised."""

import os
import subprocess
import sys
import textwrap

import pytest

from spawner import procpool
from spawner.errors import LockstepError


def _pid_and_square(x):
    return os.getpid(), x * x


def _fail_on(x, bad):
    if x == bad:
        raise LockstepError(f"job {x} is bad; use another")
    return x


def _exit(code):
    os._exit(code)


def test_results_come_back_in_order_from_other_processes():
    seen = []
    results = procpool.run_all(
        _pid_and_square, [(i,) for i in range(12)], workers=2, done=seen.append
    )
    assert [square for _, square in results] == [i * i for i in range(12)]
    assert os.getpid() not in {pid for pid, _ in results}
    assert 1 <= len({pid for pid, _ in results}) <= 2
    assert sorted(seen) == sorted(results)


def test_one_worker_runs_here():
    assert procpool.run_all(_pid_and_square, [(3,), (4,)], workers=1) == [
        (os.getpid(), 9),
        (os.getpid(), 16),
    ]


def test_a_failure_is_raised_here_as_it_was_raised_there():
    with pytest.raises(LockstepError, match="job 5 is bad; use another"):
        procpool.run_all(_fail_on, [(i, 5) for i in range(10)], workers=2)


def test_a_worker_that_dies_is_named():
    with pytest.raises(RuntimeError, match="ended with status 3"):
        procpool.run_all(_exit, [(3,), (3,)], workers=2)


def test_a_script_without_a_main_guard_is_not_imported_again(tmp_path):
    # multiprocessing's spawn/forkserver re-run such a script in the worker and fail
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import math
            from spawner import procpool
            print(sum(procpool.run_all(math.factorial, [(i,) for i in range(6)], workers=2)))
            """
        )
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": root},
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(1 + 1 + 2 + 6 + 24 + 120)
