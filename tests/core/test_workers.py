"""zero1to3.workers: the shared process pool splits the cores, runs the initializer, and stops on an error."""

import os
import time

import pytest
import torch

from zero1to3.core import workers

_STATE: dict[str, int] = {}


def _remember(value: int) -> None:
    _STATE["value"] = value


def _report() -> tuple[int, int, int]:
    return torch.get_num_threads(), _STATE.get("value", -1), os.getpid()


def _sleep_and_report_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # the pool has joined its workers: a killed one is gone, not a zombie
    except ProcessLookupError:
        return False
    return True


def test_workers_split_the_cores_and_run_the_initializer_in_the_worker():
    with workers.process_pool(2, _remember, (7,)) as pool:
        threads, value, pid = pool.submit(_report).result()
    assert threads == workers.threads_per_worker(2) == max(1, (os.cpu_count() or 1) // 2)
    assert value == 7 and pid != os.getpid()  # set in the worker's module, not a pickled copy of this one's
    assert "value" not in _STATE


def test_an_error_in_the_block_kills_running_workers_instead_of_waiting_for_their_jobs():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="stop"):
        with workers.process_pool(1) as pool:
            pool.submit(_sleep_and_report_pid, 0.0).result()  # the worker is up
            pids = list(pool._processes)
            pool.submit(_sleep_and_report_pid, 120.0)
            raise RuntimeError("stop")
    assert time.monotonic() - started < 60.0  # not the 120 s job's end
    assert pids and not any(_alive(pid) for pid in pids)


def test_a_pool_of_no_workers_is_an_error():
    with pytest.raises(ValueError, match="num_workers"):
        with workers.process_pool(0):
            pass
