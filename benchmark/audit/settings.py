"""Audit defaults shared by the checks and the command line (no heavy imports here)."""

NEAR_THRESHOLD = 4  # near-duplicate: at most this many of the 64 perceptual-hash bits differ
TREES = 100  # trees of the shortcut check's random forest
