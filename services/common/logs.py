"""Logging for gongji processes: one line per event, and no personal data in any of them.

Code never logs names, phones or addresses on purpose; the filter below is the second
line of defence, masking anything shaped like an ID number or a mobile number in every
record (a driver's message quoting a value, an exception's text) before it is written.

Two formats: `text`, one readable line for a terminal, and `json`, one object per line for
a log collector, carrying the access line's fields (method, principal, status …) apart.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared.privacy import scrub

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Fields the call guard passes as `extra` on each access line; JSON writes them apart.
ACCESS_FIELDS = ("method", "principal", "request_id", "status", "reason", "latency_ms")

# Which server a record comes from. A context variable, not a global, because tests and the
# demo run a binding service and payment nodes in one process; each server's calls run in
# tasks that inherit the context its start_server set. The process default covers the rest.
_identity: ContextVar[tuple[str, str] | None] = ContextVar("gongji_log_identity", default=None)
_process_identity: tuple[str, str] = ("", "")


def set_log_identity(service: str, node: str = "", process_wide: bool = False) -> None:
    """Names the service (and payment node) of records logged from this context on."""
    global _process_identity
    _identity.set((service, node))
    if process_wide:
        _process_identity = (service, node)


def _log_identity() -> tuple[str, str]:
    return _identity.get() or _process_identity


def _trace_ids() -> tuple[str, str]:
    """The current OpenTelemetry span's trace and span IDs, when a span is recording (traces
    are on, services.common.tracing); the import stays guarded for trimmed installs."""
    try:
        from opentelemetry import trace  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "", ""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record. It scrubs by itself as well as behind the filter, so a
    handler given only this formatter still writes no ID number or phone."""

    def format(self, record: logging.LogRecord) -> str:
        service, node = _log_identity()
        trace_id, span_id = _trace_ids()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", service),
            "node": getattr(record, "node", node),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                value = getattr(record, name)
                # request_id is the caller's text and may be anything, an ID number included.
                entry[name] = scrub(value) if isinstance(value, str) else value
        entry["trace_id"], entry["span_id"] = trace_id, span_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


class PersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def configure_logging(level: str, log_format: str = "text") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=FORMAT)
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    install_personal_data_filter()


def install_personal_data_filter() -> None:
    """Puts the filter on every handler of the root logger (handlers see records of all loggers)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
