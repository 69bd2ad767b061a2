"""The closed-form targets shared with the MCMC tests (defined in tests/mcmc/conftest.py)."""

from tests.mcmc.conftest import Quadratic, anisotropic_matrix, quadratic  # noqa: F401  (fixture re-exported)
