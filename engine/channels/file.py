"""The `file` channel: one JSON line per message, appended to a file on disk.

A fresh install's default, so that nothing leaves the machine until a real channel is
configured. Options: `path` (default `outbox.jsonl`, relative to the configuration's folder).
Lines are written as messages are sent and synced to disk when the batch closes. A daemon makes
the file when it starts (`prepare`), so that a `path` it cannot write stops it there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from engine.channels.base import (
    UNWRITABLE,
    Channel,
    Options,
    RenderedMessage,
    TemporaryFailure,
)
from engine.errors import ConfigError


class FileChannel(Channel):
    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self._file: IO[str] | None = None

    @classmethod
    def from_options(
        cls,
        name: str,
        options: dict[str, Any],
        base_dir: Path,
        environ: Mapping[str, str] = os.environ,
    ) -> FileChannel:
        read = Options(name, options, {"path"})
        return cls(name, base_dir / read.text("path", "outbox.jsonl"))

    def prepare(self) -> None:
        """Make the file's folder and open the file for appending, as the first message will:
        a folder the daemon may not write to is found at its start, not a day of retries
        later."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            blocking = next((p for p in self.path.parents if p.is_file()), None)
            why = f"{blocking} is a file, not a folder" if blocking else exc.strerror or exc
            raise ConfigError(
                f"channels.{self.name}: cannot write {self.path}: {why}",
                ("channels", self.name, "path"),
                code=UNWRITABLE,
                help="every message of this channel is added to that file: give `path` a file"
                " in a folder that the daemon's user may write to",
            ) from exc

    def send(self, message: RenderedMessage) -> None:
        line = json.dumps(message.document(), ensure_ascii=False, sort_keys=True) + "\n"
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line)
        except OSError as exc:
            raise TemporaryFailure(
                f"cannot write {self.path}: {exc.strerror or exc}", channel_down=True
            ) from exc

    def close(self) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise TemporaryFailure(f"cannot sync {self.path}: {exc.strerror or exc}") from exc
        finally:
            file.close()
