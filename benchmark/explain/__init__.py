"""Explanations of trained runs: class activation maps, their robustness to noise, and feature diversity.

Entry point: `benchmark.explain.build.explain(target, Options(...))`. Building blocks: `cams` (target layers, maps),
`noise` (noise, map stability), `diversity` (features, spectral entropy). This package module imports nothing heavy.
"""
