"""Exceptions that carry the command line's exit status (contract §4).

1 means the data failed a check; 2 means bad usage or configuration. Every message
says what to do next, because the person reading it is usually on call.
"""


class MlwatchError(Exception):
    exit_code = 1


class DataError(MlwatchError):
    """Input data broke a rule. The message names the file, the column and the rule."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 rule: str | None = None):
        super().__init__(message)
        self.file = file
        self.column = column
        self.rule = rule


class ConfigError(MlwatchError):
    """The configuration file is missing or invalid."""

    exit_code = 2


class UsageError(MlwatchError):
    """The command was called in a way that cannot work."""

    exit_code = 2


class WarehouseBusyError(MlwatchError):
    """Another process holds the DuckDB file for writing."""

    exit_code = 2
