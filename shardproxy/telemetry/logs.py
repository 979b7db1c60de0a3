"""Log output: text or JSON lines, the access log, and one line per malformed request."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

ACCESS_LOGGER = "shardproxy.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# aiohttp's server logs a request it cannot parse with a whole traceback; thousands of
# junk requests would write megabytes. It is the client's mistake: one line, at INFO.
AIOHTTP_SERVER_LOGGER = "aiohttp.server"
_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _ATTRIBUTES and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's traceback for an unparsable request into one line at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it is about a request that did not parse."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "malformed request from %s: %s"
        record.args = (remote, _one_line(exc))
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


def _one_line(exc: HttpProcessingError) -> str:
    # aiohttp's messages span lines (the bad header, a caret under it): one line, short.
    return " ".join(f"{exc.code} {exc.message}".split())[:200]


class AccessLogger(AbstractAccessLogger):
    """One line per answered request, on the ``shardproxy.access`` logger."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one request: who, what, the status, bytes sent (headers too), seconds taken."""
        sent = response.body_length
        agent = request.headers.get("User-Agent", "-")
        fields = {
            "remote": request.remote,
            "method": request.method,
            "path": request.raw_path,
            "status": response.status,
            "bytes": sent,
            "seconds": round(time, 6),
            "user_agent": agent,
        }
        self.logger.info(
            '%s "%s %s" %d %d %.3fs "%s"',
            request.remote,
            request.method,
            request.raw_path,
            response.status,
            sent,
            time,
            agent,
            extra={"access": fields},
        )


def configure_logging(level: str, log_format: str = "text") -> None:
    """Set the root logger up once for the process: level, text or JSON lines."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    install_malformed_request_filter()


def install_malformed_request_filter() -> None:
    """Put the one-line filter on aiohttp's server logger (idempotent)."""
    server_log = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


def access_logger() -> logging.Logger:
    """The logger access lines go to."""
    return logging.getLogger(ACCESS_LOGGER)
