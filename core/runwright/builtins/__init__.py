"""runwright's own defaults, each an ordinary plugin registered under a ``runwright.*`` name."""
