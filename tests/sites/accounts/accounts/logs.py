"""A colour formatter that formats each message with the record's fields, then lists the extra
fields: ``logger.info("hello {user}", extra={"user": ...})``."""
import logging

RESET, COLOURS = "\x1b[0m", {"DEBUG": "\x1b[36m", "INFO": "\x1b[32m", "WARNING": "\x1b[33m",
                             "ERROR": "\x1b[31m", "CRITICAL": "\x1b[35m"}
STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class ColorFormatter(logging.Formatter):
    def format(self, record):
        fields = dict(vars(record))
        message = record.getMessage().format(**fields)
        extra = " ".join(f"{key}={value}" for key, value in sorted(fields.items()) if key not in STANDARD)
        text = f"{COLOURS.get(record.levelname, '')}{record.levelname:<7}{RESET} [{record.name}] {message}"
        if extra:
            text += f" \x1b[2m{extra}{RESET}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
