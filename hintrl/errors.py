"""Errors that are a user's or a data problem: the CLI prints them as one line, no traceback."""


class HintrlError(Exception):
    """A failure with a message meant for the person running the pipeline."""


class DataContractError(HintrlError):
    """Input data breaks a contract of DESIGN.md (missing partition, bad schema, too many rejects)."""


class GateError(HintrlError):
    """The promotion gate could not decide (missing metric, unreachable registry): fail closed."""
