"""Worker processes that die with the process that started them (stage 01's Blender workers, stage 02's trainers,
stage 04's reconstructions).

A worker of a `ProcessPoolExecutor` blocks reading its job queue, whose write end it holds itself, so it never sees
its parent go: a killed stage would leave its workers rendering or training on, holding memory and cores.
`process_pool` is the pool stages 02 and 04 share: spawned workers that die with the caller, the cores split between
them, and running jobs stopped when the caller stops on an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when `parent_pid` dies, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG; it fires when the parent's *thread*
    that started the worker ends, so the caller waits for its workers in that thread); elsewhere a daemon thread
    polls the parent id once a second.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
        logger.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d); polling the parent instead", ctypes.get_errno())
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)  # no cleanup: the caller's next run cleans up (a render's `.partial` folder, a checkpoint's temp file)


def threads_per_worker(num_workers: int) -> int:
    """The cores split evenly between `num_workers` processes (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // num_workers)


@contextlib.contextmanager
def process_pool(
    num_workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """A pool of `num_workers` spawned processes, each with `threads_per_worker` torch threads.

    Each worker dies with this process (`die_with_parent`), then runs `initializer(*initargs)`. Leaving the block by
    an exception (a job's error, Ctrl-C) kills the workers still running instead of waiting for their jobs: the
    executor itself would finish them first, and has no public way to stop one. Jobs that checkpoint resume from there.
    """
    if num_workers < 1:
        raise ValueError(f"`num_workers` must be >= 1, got {num_workers}")
    initargs = (threads_per_worker(num_workers), os.getpid(), initializer, initargs)
    with ProcessPoolExecutor(num_workers, mp.get_context("spawn"), initializer=_init_worker, initargs=initargs) as pool:
        try:
            yield pool
        except BaseException:
            for process in list(pool._processes.values()):
                process.kill()
            raise


def _init_worker(
    threads: int, parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    import torch  # only the workers need it (stage 01's render workers never start a pool through here)

    die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)
