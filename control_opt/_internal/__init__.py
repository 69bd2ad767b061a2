"""Private helpers shared by every part of the library (not public API).

  checks        argument checks: `check_*(name, value, ...)`, errors that name the argument
  structures    weights of any nested structure: conversion, batch axes, batched losses
  sampling      stateless seeds and the library's one Gaussian sampler
  atomic        atomic file writes
  keras_adaptor a Keras model and loss as a function of its weights
"""
