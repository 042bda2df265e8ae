"""The progress display of mutating commands, plus the documented crash-test pause.

With VCERTS_TEST_PAUSE_AFTER=<step> the progress callback blocks forever after the workflow reports that
step done (lock, backup, write, restart, wait, verify, release; rollback: the backup was written back
during a rollback), so that a test can SIGKILL the process at that exact point. It lives in the progress
renderer, never in the workflow.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.rotation.ports import ProgressEvent

PAUSE_ENV = "VCERTS_TEST_PAUSE_AFTER"


def make_progress(deps: Deps) -> Callable[[ProgressEvent], None]:
    """The shared progress display (cli.render.progress) plus the crash-test pause."""
    from kubectl_vcerts.cli.render import progress as shared_progress

    show = shared_progress(deps)
    pause_after = os.environ.get(PAUSE_ENV, "")

    def progress(event: ProgressEvent) -> None:
        show(event)
        if pause_after and event.done and event.step == pause_after:
            print(f"kubectl vcerts: paused after {event.step} ({PAUSE_ENV})", file=sys.stderr, flush=True)
            while True:  # until killed: the crash tests SIGKILL us here
                time.sleep(3600)

    return progress
