"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


class OccamError(Exception):
    """Base of errors caused by the user's input (config, data, checkpoint, run directory)."""


class ConfigError(OccamError):
    """Invalid configuration: unknown key, wrong type, out-of-range value, unknown name, bad file."""


class DataError(OccamError):
    """A data set cannot be found or read."""


class CheckpointError(OccamError):
    """A checkpoint is missing, corrupt, or belongs to a different game."""


class RunDirError(OccamError):
    """A run directory exists (without --resume/--overwrite) or is not a run."""


class TrainingError(OccamError):
    """Training diverged (non-finite loss or parameters) or a solver failed."""


class Interrupted(OccamError):
    """Training stopped by a signal after writing a checkpoint; exit 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
