"""Structured logs: one JSON object per line on stderr, with the service's name on each."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is per-connection chatter


class RepeatedFailure:
    """The log of a task a thread retries in a loop (a background write, a reconnect): its
    first failure is logged with the trace, the failures after it are not (an outage logged a
    trace ten times a second), and the first success after them says how long it lasted."""

    def __init__(self, logger: logging.Logger, task: str) -> None:
        self._log = logger
        self._task = task
        self._since: float | None = None

    def failed(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self._log.error("%s failed; retrying until it works", self._task, exc_info=exc)

    def succeeded(self) -> None:
        if self._since is not None:
            seconds = round(time.monotonic() - self._since, 1)
            self._since = None
            self._log.warning("%s works again", self._task, extra={"fields": {"after_s": seconds}})
