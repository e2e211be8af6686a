"""Logging for gongji processes: one line per event, and no personal data in any of them.

Code never logs names, phones or addresses on purpose; the filter below is the second
line of defence, masking anything shaped like an ID number or a mobile number in every
record (a driver's message quoting a value, an exception's text) before it is written.
"""

from __future__ import annotations

import logging

from shared.privacy import scrub

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=FORMAT)
    install_personal_data_filter()


def install_personal_data_filter() -> None:
    """Puts the filter on every handler of the root logger (handlers see records of all loggers)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
