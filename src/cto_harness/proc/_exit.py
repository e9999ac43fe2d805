"""Ending the process once its work is durable, without interpreter teardown."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` as ``sys.exit`` would, minus the module teardown.

    Other threads that are not daemons are joined and the ``atexit`` handlers run (temp
    dirs, logging), the standard streams are flushed, then ``os._exit``. Only for a
    process whose evidence is already written, fsynced and closed: teardown would only
    free memory the kernel frees anyway (~10 ms after a run).
    """
    with contextlib.suppress(BaseException):
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code & 0xFF)
