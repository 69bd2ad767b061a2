"""Tests of control_opt.models."""
