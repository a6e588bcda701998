"""User-facing errors: the CLI prints their message (which names the file, field or value and what to
do) without a traceback and exits with status 1."""


class SeqbenchError(Exception):
    pass


class DataError(SeqbenchError):
    """A raw or intermediate file is missing, malformed or fails verification."""


class DatasetUnavailable(DataError):
    """A dataset's raw files can be found neither in a mirror folder nor at their URL."""


class TrainingError(SeqbenchError):
    """Training cannot go on (a NaN/inf loss, an unsupported model/task pair, ...)."""
