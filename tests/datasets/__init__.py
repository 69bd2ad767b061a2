"""Tests of control_opt.datasets."""
