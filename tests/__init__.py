"""The test suite (a regular package, so that a site-packages `tests` package, e.g. the one baycomp 1.0.3 installs,
cannot shadow it)."""
