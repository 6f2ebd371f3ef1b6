"""blurtrack: real-time tracking through motion-blurred video. This package holds the command line."""

__version__ = "0.1.0"
