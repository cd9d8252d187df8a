"""Reproducible MNIST pipeline: fetch, preprocess, train, evaluate as one DVC graph."""

__version__ = "0.1.0"
