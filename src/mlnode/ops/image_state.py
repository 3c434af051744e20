"""The persisted image state: when each image was first seen and last used, on disk.

The model and the file's format are pure (:mod:`mlnode.gc`: :class:`~mlnode.gc.ImageState`,
:func:`~mlnode.gc.detect`, :func:`~mlnode.gc.state_to_json`); this module only reads and
writes the file. :class:`ImageStateFile` loads and saves it (default
``/var/lib/mlnode/image-state.json``) atomically: temp file in the same directory,
fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from mlnode.errors import InputError
from mlnode.gc import (
    ImageState,
    InvalidGcInput,
    ObservedImage,
    detect,
    state_from_json,
    state_to_json,
)

__all__ = ["DEFAULT_STATE_FILE", "ImageStateFile"]

DEFAULT_STATE_FILE = Path("/var/lib/mlnode/image-state.json")


class ImageStateFile:
    """The persisted :class:`ImageState` at ``path``."""

    def __init__(self, path: Path = DEFAULT_STATE_FILE) -> None:
        self.path = path

    def load(self) -> ImageState:
        """Read the file; a missing file is an empty state. Corrupt → :class:`InputError`."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ImageState()
        except OSError as e:
            raise InputError(f"cannot read image state: {e.strerror or e}", path=self.path) from e
        except UnicodeDecodeError as e:
            raise InputError(f"corrupt image state (not UTF-8): {e.reason}", path=self.path) from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(
                f"corrupt image state: {e.msg} at column {e.colno}; delete the file to start over",
                path=self.path,
                line=e.lineno,
            ) from e
        try:
            return state_from_json(data)
        except InvalidGcInput as e:
            raise InputError(
                f"corrupt image state: {e}; delete the file to start over", path=self.path
            ) from e

    def save(self, state: ImageState) -> None:
        """Write atomically: readers see the old file or the new one, never a mix."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
            )
        except OSError as e:
            raise InputError(f"cannot write image state: {e.strerror or e}", path=self.path) from e
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state_to_json(state), f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise InputError(f"cannot write image state: {e.strerror or e}", path=self.path) from e
        _fsync_directory(directory)

    def observe(
        self,
        images: Iterable[ObservedImage],
        containers_in_use: Iterable[str],
        now: datetime,
    ) -> ImageState:
        """Load, apply :func:`detect`, save, and return the new state."""
        state = detect(self.load(), images, containers_in_use, now)
        self.save(state)
        return state


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems refuse to open directories, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
