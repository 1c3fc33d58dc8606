"""The suite's two XLA levels (tests/conftest.py): it compiles without XLA's
optimizations, and the tests marked ``xla_default`` compile at the default
level, as users do. The tests asserting bit-identical results across
compiled programs must carry the mark: only the optimizing backend could
break those (it contracts ``a*b + c`` into fused multiply-adds fusion by
fusion)."""

import os

import jax
import pytest
from conftest import optimizations_disabled
from conftest import XLA_DEFAULT_ENV

# The tests that must carry the mark (one renamed or unmarked by mistake
# would otherwise leave the default level silently untested).
BIT_IDENTITIES = {
    'tests/test_rmda.py::test_sparse_params_has_exactly_the_updates_zeros',
    'tests/test_recipes.py::test_is_rmda_projected_then_asr_by_sgd_bit_for_bit',
    'tests/test_recipes.py::'
    'test_ends_at_exactly_the_sparsity_and_retraining_keeps_the_zeros',
    'tests/test_adaptive_l1.py::test_rmda_reaches_the_ramp_exactly_at_every_step',
    'tests/test_threshold.py::'
    'test_warm_start_is_exact_along_a_run_and_takes_one_pass',
    'tests/test_asr.py::test_asr_zeroes_what_the_inner_sees',
    'tests/test_constraints.py::test_rmda_with_the_constraint_matches_numpy',
    'tests/test_ramda.py::'
    'test_the_recomputed_sparse_point_is_the_updates_to_the_bit',
    'tests/test_ramda.py::'
    'test_asr_retrains_from_the_prox_point_and_keeps_its_zeros',
    'tests/test_pinned_dual_point.py::test_pin_is_the_identity',
    'tests/test_pinned_dual_point.py::'
    'test_the_search_on_computed_values_is_the_cold_exact_search',
    'tests/test_pinned_dual_point.py::'
    'test_rmda_zeros_the_k_smallest_of_the_dual_point',
    'tests/test_pinned_dual_point.py::test_a_computed_search_needs_an_opaque_zero',
}


def test_the_suite_compiles_without_xla_optimizations():
  assert jax.config.read('jax_disable_most_optimizations') == (
      not os.environ.get(XLA_DEFAULT_ENV)
  )
  assert optimizations_disabled() == (not os.environ.get(XLA_DEFAULT_ENV))


@pytest.mark.xla_default
def test_a_marked_test_compiles_at_the_default_level():
  assert not jax.config.read('jax_disable_most_optimizations')
  # And its programs are compiled anew (no executable of the other level).
  assert jax.jit(lambda x: x + 1)(1) == 2


def test_the_bit_identity_tests_are_marked(request):
  items = request.session.items
  marked = {
      item.nodeid.split('[')[0]
      for item in items
      if item.get_closest_marker('xla_default') is not None
  }
  collected = {item.nodeid.split('[')[0] for item in items}
  missing = {t for t in BIT_IDENTITIES if t in collected} - marked
  assert not missing, missing
  if len(items) > 500:  # The whole suite: every one of them is there.
    assert BIT_IDENTITIES <= collected, BIT_IDENTITIES - collected
