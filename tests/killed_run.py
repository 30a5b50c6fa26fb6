"""Run fairseq-train or one of scripts/*.py and SIGKILL it at a chosen point (kill-and-resume tests).

Usage: ``python tests/killed_run.py fairseq-train|SCRIPT.py ARGUMENTS...`` with
- ``KILL_AFTER_UPDATE=K`` (fairseq-train): right after update K, before its checkpoint is saved;
- ``KILL_IN_WRITE_OF=GLOB``, ``KILL_IN_FILE_WRITE=N`` (default 1) and ``KILL_AFTER_BYTES=B`` (default
  1000): once B bytes (characters for a text file) of the N-th file whose name matches GLOB opened for
  writing have reached the disk, i.e. in the middle of writing it.
Without them the program runs normally. The kill is the process's own SIGKILL: no handler, no
``finally``, no flush runs, as when the out-of-memory killer or a job scheduler stops a job.
"""

import builtins
import fnmatch
import io
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

KILLED_RUN = Path(__file__).resolve()


def _kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillingWriter:
    """A writable file that SIGKILLs the process once ``limit`` bytes went through it."""

    def __init__(self, handle, limit: int):
        self._handle, self._left = handle, limit

    def write(self, data) -> int:
        data = memoryview(data).cast("B") if not isinstance(data, str) else data
        if len(data) >= self._left:
            self._handle.write(data[: self._left])
            self._handle.flush()
            os.fsync(self._handle.fileno())
            _kill_now()
        self._left -= len(data)
        return self._handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _kill_in_file_write(pattern: str, nth: int, limit: int) -> None:
    shutil._USE_CP_SENDFILE = False  # copies must go through write() so that the kill can interrupt them
    original_open = builtins.open
    opened = [0]

    def open_and_maybe_kill(file, mode="r", *args, **kwargs):
        handle = original_open(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        if (
            writing
            and isinstance(file, (str, os.PathLike))
            and fnmatch.fnmatch(os.path.basename(file), pattern)
        ):
            opened[0] += 1
            if opened[0] == nth:
                return _KillingWriter(handle, limit)
        return handle

    builtins.open = io.open = open_and_maybe_kill  # zipfile opens through io.open


def _kill_after_update(update: int) -> None:
    from fairseq.trainer import Trainer

    train_step = Trainer.train_step

    def train_step_and_maybe_kill(self, *args, **kwargs):
        output = train_step(self, *args, **kwargs)
        if self.get_num_updates() == update:
            _kill_now()
        return output

    Trainer.train_step = train_step_and_maybe_kill


def run_killed(command: List[str], **kill) -> subprocess.CompletedProcess:
    """Run ``command`` with the ``KILL_*`` settings in its environment; then stop what it left behind.

    Output goes to a file, not a pipe: worker processes orphaned by the kill would hold a pipe open.
    """
    env = {**os.environ, **{key: str(value) for key, value in kill.items()}}
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, env=env, start_new_session=True)
        returncode = process.wait(timeout=600)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # worker processes of a killed parent
        except ProcessLookupError:
            pass
        output.seek(0)
        return subprocess.CompletedProcess(command, returncode, output.read(), "")


def main() -> None:
    program, argv = sys.argv[1], sys.argv[2:]
    if "KILL_AFTER_UPDATE" in os.environ:
        _kill_after_update(int(os.environ["KILL_AFTER_UPDATE"]))
    if "KILL_IN_WRITE_OF" in os.environ:
        nth, limit = (
            int(os.environ.get(name, default))
            for name, default in (("KILL_IN_FILE_WRITE", "1"), ("KILL_AFTER_BYTES", "1000"))
        )
        _kill_in_file_write(os.environ["KILL_IN_WRITE_OF"], nth, limit)
    sys.argv = [program, *argv]
    if program == "fairseq-train":
        from fairseq_cli.train import cli_main

        cli_main()
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(program)))
        runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
