"""Tests of experiments/: the flags helper, the training runner library, resume."""
