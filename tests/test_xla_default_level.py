"""The tests that assert bit-identical results across different compiled
programs, run again at XLA's default optimization level.

The suite compiles with XLA:CPU's optimizing backend off (tests/conftest.py,
``XLA_TEST_LEVEL``): it halves the cost of the many compilations and changes
no result a test checks with a tolerance. It could hide one thing: at the
default level LLVM contracts ``a*b + c`` into fused multiply-adds fusion by
fusion, so two programs computing the same expression may round it
differently (the reason RMDA writes its dual point once before the
threshold search counts and masks it). The tests whose assertion is such a
bit-for-bit identity carry the ``xla_default`` mark; this test runs them in
a fresh process compiling as users do.
"""

import os
import subprocess
import sys

import pytest
from conftest import XLA_DEFAULT_ENV
from conftest import XLA_TEST_LEVEL

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests that must carry the mark (a test renamed or unmarked by mistake
# would otherwise leave the default level silently untested).
EXPECTED = {
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


def _marked(session) -> list[str]:
  return sorted(
      item.nodeid
      for item in session.items
      if item.get_closest_marker('xla_default') is not None
  )


def test_bit_identities_hold_at_xla_default_level(request):
  if os.environ.get(XLA_DEFAULT_ENV):
    pytest.skip('already at the default level')
  marked = _marked(request.session)
  if not marked:
    pytest.skip('no xla_default test selected in this session')
  functions = {n.split('[')[0] for n in marked}
  if len(request.session.items) > 500:  # The whole suite is collected.
    assert functions == EXPECTED, functions ^ EXPECTED
  env = dict(os.environ)
  env[XLA_DEFAULT_ENV] = '1'
  env['XLA_FLAGS'] = ' '.join(
      f for f in env.get('XLA_FLAGS', '').split() if f != XLA_TEST_LEVEL
  )
  proc = subprocess.run(
      [
          sys.executable,
          '-m',
          'pytest',
          '-q',
          '-n',
          '0',
          '-p',
          'no:cacheprovider',
          '-o',
          'addopts=',
          *marked,
      ],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
  assert f'{len(marked)} passed' in proc.stdout, proc.stdout[-3000:]
