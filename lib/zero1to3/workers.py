"""Worker processes that die with the process that started them (stage 01's Blender workers, stage 02's trainers).

A worker of a `ProcessPoolExecutor` blocks reading its job queue, whose write end it holds itself, so it never sees
its parent go: a killed stage would leave its workers rendering or training on, holding memory and cores.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

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
