"""Write outputs so that a failure never leaves a half-written file or directory behind.

Every stage writes into a temporary sibling of the final path and renames it into place only
when the content is complete; a rename within one directory is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; outputs get the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()
_DIR_MODE = 0o777 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(final: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; move it over ``final`` on success.

    Args:
        final: Where the file or directory must end up.
        directory: Yield an empty directory instead of a file path.

    Yields:
        The temporary path to write to. On any exception it is removed and ``final`` is untouched.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        tmp.chmod(_DIR_MODE)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(_FILE_MODE)
    try:
        yield tmp
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(final: Path, text: str) -> None:
    """Atomically write a text file (UTF-8).

    Args:
        final: Destination path.
        text: Full content.
    """
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
