"""Errors a user can cause. Each message says what to do about it."""


class BlurtrackError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidFrameError(BlurtrackError, ValueError):
    """The frame is empty, has the wrong shape or dtype, or could not be decoded."""


class InvalidBoxError(BlurtrackError, ValueError):
    """The box has no area, is not finite, or lies outside the frame."""


class ModelNotFoundError(BlurtrackError, FileNotFoundError):
    """A bundle, manifest or network file is missing."""


class BackendUnavailableError(BlurtrackError, RuntimeError):
    """The requested runtime is unknown or not installed here."""


class NotInitializedError(BlurtrackError, RuntimeError):
    """`track` was called before `init`."""


class DatasetError(BlurtrackError, ValueError):
    """An evaluation data set folder does not follow the OTB layout."""
