"""Exceptions users can catch. Each message names what went wrong and what to do instead."""


class GistMemoryError(Exception):
    """Base class of every error raised on purpose by gist-memory."""


class ModelLoadError(GistMemoryError):
    """A base model or adapter could not be found or loaded."""


class CacheFormatError(GistMemoryError, ValueError):
    """A gist cache file is not a valid cache (wrong format, truncated, or a pickle)."""


class CacheMismatchError(GistMemoryError, ValueError):
    """A gist cache was made by another base model, adapter or gist configuration."""


class InputError(GistMemoryError, ValueError):
    """The caller passed something the engine cannot use (an empty text, an unknown mode ...)."""
