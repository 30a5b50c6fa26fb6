"""Make every checkpoint fairseq writes appear whole or not at all, so a killed training resumes.

fairseq 0.12 writes the first checkpoint of a save atomically (a ``.tmp`` file renamed into place)
but then *copies* it to the others, ``checkpoint_last.pt`` among them, with a plain file copy: a
job killed during that copy (SIGKILL, a pre-empted node, an out-of-memory kill) leaves a truncated
``checkpoint_last.pt``, and the restarted job dies loading it. Here the copies go through a
temporary file too, renamed into place once complete; the copy replaced keeps loading until then.
"""

import os
import shutil

from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

__all__ = ["install_atomic_checkpoint_copies"]


class _AtomicCopyPathManager:
    """fairseq's ``PathManager`` whose local ``copy`` writes ``<dst>.tmp`` and renames it to ``dst``."""

    def __getattr__(self, name):
        return getattr(PathManager, name)

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not PathManager.supports_rename(dst_path):  # a remote store (iopath handler): its own copy
            return PathManager.copy(src_path, dst_path, overwrite=overwrite)
        if not overwrite and os.path.exists(dst_path):
            return False
        temporary = dst_path + ".tmp"
        shutil.copyfile(src_path, temporary)
        os.replace(temporary, dst_path)
        return True


def install_atomic_checkpoint_copies() -> None:
    """Route fairseq's checkpoint copies through :class:`_AtomicCopyPathManager` (idempotent)."""
    if not isinstance(checkpoint_utils.PathManager, _AtomicCopyPathManager):
        checkpoint_utils.PathManager = _AtomicCopyPathManager()
