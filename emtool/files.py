"""Files that appear whole or not at all: ``StagedFile``.

A long job's text or trajectory output is written to a hidden file beside its destination
(``.NAME.partial``, same folder, so the final move is an atomic rename) and moved into place
when the job ends. ``close(keep=False)`` deletes it instead, so a failure (a full disk, a bad
input found late) never leaves half a file, nor touches a file that was there before.
"""
import os
from pathlib import Path


class StagedFile:
    """``path`` (str or Path): the destination; ``temporary``: where the data goes until
    ``close``. ``open(mode)`` opens the temporary file."""

    def __init__(self, path):
        self.path = Path(path)
        self.temporary = self.path.with_name(f".{self.path.name}.partial")

    def open(self, mode="w"):
        return open(self.temporary, mode)

    def close(self, keep=True):
        """Move the temporary file into place (``keep``) or delete it."""
        if keep and self.temporary.exists():
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)
