"""RAMDA against a NumPy transcription of the authors' code, its subproblem
solver against exact solutions, a convex problem with a known optimum, its
sparse point and ASR."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rda_optax
from rda_optax import preconditioned
from _optim_helpers import random_grads, random_params, run, SHAPES

F = np.float32


def np_group_norm(x, axes):
  return np.sqrt((x * x).sum(axis=axes, keepdims=True, dtype=F))


def np_pgd_glasso(
    p, p0, v, denom, alpha, lam, axes, max_iters=100, rtol=1e-8, ratios=None
):
  """``pgd_solver_glasso`` and ``prox_glasso`` of ismoptgroup/ramda_exp
  (Core/solver.py, Core/prox_fns.py), line by line, in float32. The groups
  the screen removes are held at zero and left out of the objective, as the
  reference's index_select does."""
  n_g = math.prod(p.shape[a] for a in axes)
  threshold = F(alpha) * F(lam) * F(math.sqrt(n_g))
  mask = np_group_norm(denom * p0 - v, axes) > threshold
  if not mask.any():
    return np.zeros_like(p), 0
  eta = F(1) / denom.max(axis=axes, keepdims=True)
  p_ = np.where(mask, p, F(0))
  diff = p_ - p0
  dd = diff * denom

  def objective(diff, dd, norms):
    return (
        np.where(mask, diff * v, 0).sum(dtype=F)
        + np.where(mask, dd * diff, 0).sum(dtype=F) * F(0.5)
        + np.where(mask, norms, 0).sum(dtype=F) * threshold
    )

  previous = objective(diff, dd, np_group_norm(p_, axes))
  steps = 0
  for i in range(max_iters):
    p_ = p_ - (v + dd) * eta
    thr = eta * threshold
    norm = np.maximum(np_group_norm(p_, axes) - thr, F(0))
    with np.errstate(invalid='ignore'):
      p_ = np.where(mask, p_ * (norm / (norm + thr)), F(0))
    diff = p_ - p0
    dd = diff * denom
    current = objective(diff, dd, norm)
    steps += 1
    if ratios is not None:  # The stopping rule's statistic at each step.
      ratios.append(
          (float(previous) - float(current)) / (abs(float(current)) + 1.0)
      )
    if (
        rtol is not None
        and (float(previous) - float(current)) / (abs(float(current)) + 1.0)
        < rtol
        and i > 0
    ):
      break
    previous = current
  return p_, steps


GROUP_AXES = {'conv': (0, 1, 2), 'dense': (0,)}  # Output groups.


def np_exact_glasso(p0, v, denom, alpha, lam, axes):
  """The exact minimiser of the same subproblem (float64, group by group,
  :func:`exact_group_prox`), cast to float32."""
  n_g = math.prod(p0.shape[a] for a in axes)
  tau = float(alpha) * float(lam) * math.sqrt(n_g)
  d = np.asarray(denom, float)
  u = np.asarray(p0, float) - np.asarray(v, float) / d
  (group_axis,) = set(range(p0.ndim)) - set(axes)
  out = np.empty_like(u)
  for j in range(p0.shape[group_axis]):
    at = (slice(None),) * group_axis + (j,)
    out[at] = exact_group_prox(u[at].ravel(), d[at].ravel(), tau).reshape(
        u[at].shape
    )
  return out.astype(F)


def np_ramda(
    params,
    grads,
    lr,
    mom,
    kind,
    lam,
    eps=1e-6,
    restarts=(),
    rtol=1e-8,
    max_iters=100,
):
  """``RAMDA.step`` of ismoptgroup/ramda_exp (Core/optimizer.py) in float32,
  with the restart of its scheduler (Core/scheduler.py); ``mom`` is our
  μ = 1 − c. λ = 0 on the bias (an unregularized group)."""
  w = {k: np.asarray(v, F) for k, v in params.items()}
  p0 = {k: v.copy() for k, v in w.items()}
  zeros = lambda: {k: np.zeros(s, F) for k, s in SHAPES.items()}
  grad_sum, grad_sum_sq, alpha, step = zeros(), zeros(), F(0), 0
  traj, tilde, inner = [], [], []
  for n, g in enumerate(grads):
    if n in restarts:
      p0 = {k: v.copy() for k, v in w.items()}
      grad_sum, grad_sum_sq, alpha, step = zeros(), zeros(), F(0), 0
    step += 1
    step_size = F(lr(n) if callable(lr) else lr) * F(math.sqrt(step))
    alpha = alpha + step_size
    c = F(1 - (mom(n) if callable(mom) else mom))
    wt, most = {}, 0
    for k in SHAPES:
      grad = np.asarray(g[k], F)
      grad_sum[k] = grad_sum[k] + grad * step_size
      grad_sum_sq[k] = grad_sum_sq[k] + np.square(grad) * step_size
      denom = grad_sum_sq[k] ** F(1 / 3) + F(eps)
      if k == 'bias' or kind == 'none':
        wt[k] = p0[k] - grad_sum[k] / denom
      elif kind == 'l1':
        u = p0[k] - grad_sum[k] / denom
        wt[k] = np.sign(u) * np.maximum(np.abs(u) - alpha * F(lam) / denom, 0)
      elif kind == 'group_exact':
        wt[k] = np_exact_glasso(
            p0[k], grad_sum[k], denom, alpha, lam, GROUP_AXES[k]
        )
      else:
        wt[k], steps = np_pgd_glasso(
            w[k],
            p0[k],
            grad_sum[k],
            denom,
            alpha,
            lam,
            GROUP_AXES[k],
            rtol=rtol,
            max_iters=max_iters,
        )
        most = max(most, steps)
      w[k] = (F(1) - c) * w[k] + c * wt[k]
    traj.append({k: v.copy() for k, v in w.items()})
    tilde.append(wt)
    inner.append(most)
  return traj, tilde, inner


def run_with_state(opt, params, grads):
  state = opt.init(params)
  update = jax.jit(opt.update)
  traj, inner = [], []
  for g in grads:
    updates, state = update(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
    traj.append(jax.tree.map(np.asarray, params))
    inner.append(int(state.inner_steps))
  return traj, state, inner


def regularizer(kind, lam):
  return {
      'l1': rda_optax.l1(lam),
      'group': rda_optax.group_lasso(lam),
      'group_exact': rda_optax.group_lasso(lam),
      'none': None,
  }[kind]


@pytest.mark.parametrize(
    'kind, momentum',
    [
        ('l1', 'schedule'),
        ('group', 0.9),
        ('group', 0.0),
        ('group_exact', 0.9),
        ('none', 0.5),
    ],
)
def test_ramda_matches_the_reference_code_over_100_steps(kind, momentum):
  """To float32 rounding. The inner loop takes its 10 steps (rtol=None):
  where it stops early is a comparison of two float32 objectives, which a
  rounding difference can flip and a flip moves the iterate by the solver's
  tolerance; the stopping rule is checked on single subproblems below, the
  default tolerance further down. ``group_exact``: the default solver
  (Newton's) against the exact subproblem solution in float64."""
  lam = {'l1': 0.01, 'group': 0.07, 'group_exact': 0.07, 'none': 0.0}[kind]
  mom = (
      optax.linear_schedule(0.5, 0.9, 50)
      if momentum == 'schedule'
      else momentum
  )
  lr = optax.cosine_decay_schedule(0.05, 100)
  params, grads = random_params(), random_grads(100)
  opt = rda_optax.ramda(
      lr,
      regularizer(kind, lam),
      momentum=mom,
      rtol=None,
      max_iters=10,
      # The reference code's loop, transcribed; Newton's: exact.
      solver='newton' if kind == 'group_exact' else 'pgd',
  )
  traj, state, inner = run_with_state(opt, params, grads)
  want, tilde, want_inner = np_ramda(
      params,
      grads,
      lambda n: float(lr(n)),
      (lambda n: float(mom(n))) if callable(mom) else mom,
      kind,
      lam,
      rtol=None,
      max_iters=10,
  )
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=2e-6)
  sparse = rda_optax.sparse_params(state, traj[-1])
  for k in SHAPES:
    np.testing.assert_allclose(sparse[k], tilde[-1][k], rtol=1e-5, atol=2e-6)
  if kind == 'group_exact':  # Newton's iterations; no stored prox point.
    assert 1 <= max(inner) <= 6 and state.prox_params is None
  else:
    assert inner == want_inner
  assert int(state.count) == 100 and int(state.k) == 100
  if kind == 'none':
    assert max(inner) == 0
    return
  conv = np.asarray(sparse['conv'])
  assert 0 < (conv == 0).sum() < conv.size  # Exact zeros, not all.
  np.testing.assert_array_equal(conv == 0, tilde[-1]['conv'] == 0)
  if kind == 'l1':
    assert max(inner) == 0  # Closed form.
  else:  # The solver ran, and whole groups are zero.
    assert max(inner) == 10 or kind == 'group_exact'
    zero_groups = (conv == 0).all(axis=(0, 1, 2))
    assert zero_groups.any() and not zero_groups.all()
    assert ((conv != 0).all(axis=(0, 1, 2)) | zero_groups).all()


@pytest.mark.parametrize('rtol', [1e-3, 1e-4])
def test_the_stopping_rule_against_the_reference(rtol):
  """On the same subproblems our loop stops where the reference's statistic
  first falls below rtol, up to a tie (within 1% of rtol: the statistic is
  a difference of two float32 objectives, which cancels about 3 of their 7
  digits at rtol = 1e-4), and its iterate after as many steps is the
  reference's to rounding."""
  rng = np.random.default_rng(7)
  counts = []
  for _ in range(4):
    p0, v, start = (rng.normal(size=(6, 5)).astype(F) for _ in range(3))
    d = rng.uniform(0.2, 3.0, size=(6, 5)).astype(F)
    lam, alpha = 0.1, 1.5
    ratios = []
    np_pgd_glasso(start, p0, v, d, alpha, lam, (0,), rtol=None, ratios=ratios)
    got, steps = jax.jit(
        lambda a, b, c, s: preconditioned.solve(
            rda_optax.group_lasso(lam),
            a,
            b,
            c,
            True,
            alpha,
            0,
            start=s,
            rtol=rtol,
            solver='pgd',
        )
    )(p0, v, d, start)
    k = int(steps)
    assert ratios[k - 1] < rtol * 1.01  # Stops once the statistic is low,
    assert all(r > rtol * 0.99 for r in ratios[1 : k - 1])  # not before.
    want, _ = np_pgd_glasso(
        start, p0, v, d, alpha, lam, (0,), rtol=None, max_iters=k
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    counts.append(k)
  assert max(counts) > 3 and len(set(counts)) > 1


def test_the_default_tolerance_stays_within_the_solver_inexactness():
  """With the reference's rtol = 1e-8 the two float32 runs stop their inner
  loops at steps that rounding decides, so they agree to the solver's
  inexactness (about 1e-5 here), not to rounding."""
  lr = optax.cosine_decay_schedule(0.05, 100)
  params, grads = random_params(), random_grads(100)
  opt = rda_optax.ramda(
      lr, rda_optax.group_lasso(0.02), momentum=0.9, solver='pgd'
  )
  traj, _, inner = run_with_state(opt, params, grads)
  want, _, want_inner = np_ramda(
      params, grads, lambda n: float(lr(n)), 0.9, 'group', 0.02
  )
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], atol=1e-4)
  assert np.mean(np.abs(np.subtract(inner, want_inner)) <= 2) > 0.9


def test_restarts_recentre_and_reset_both_sums():
  params, grads = random_params(), random_grads(40)
  opt = rda_optax.ramda(
      0.05, rda_optax.l1(0.01), momentum=0.5, restart_steps=(15, 30)
  )
  traj, state = run(opt, params, grads)
  want, _, _ = np_ramda(params, grads, 0.05, 0.5, 'l1', 0.01, restarts=(15, 30))
  for got, ref in zip(traj, want):
    for k in SHAPES:
      np.testing.assert_allclose(got[k], ref[k], rtol=2e-5, atol=2e-6)
  assert int(state.count) == 40 and int(state.k) == 10
  np.testing.assert_allclose(
      state.init_params['dense'], traj[29]['dense'], rtol=1e-6
  )


def test_cube_root_to_a_few_ulp_over_the_float32_range():
  from rda_optax.ramda import cube_root  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  v = np.exp(rng.uniform(-87.0, 88.0, 20000)).astype(F)
  v = np.concatenate([v, np.array([1.1754944e-38, 3.4028235e38, 1, 8], F)])
  got = np.asarray(jax.jit(cube_root)(jnp.asarray(v)), np.float64)
  want = np.cbrt(v.astype(np.float64))
  assert np.max(np.abs(got - want) / want) < 4e-7
  zero = jnp.array([0.0, -0.0, 1e-45, -1.0], jnp.float32)
  np.testing.assert_array_equal(jax.jit(cube_root)(zero), np.zeros(4, F))


def test_epsilon_is_added_after_the_cube_root():
  params = {'w': jnp.zeros((1, 1))}
  opt = rda_optax.ramda(1.0, momentum=0.0, epsilon=0.5)
  state = opt.init(params)
  updates, _ = opt.update({'w': jnp.full((1, 1), 8.0)}, state, params)
  # P = ∛(1·64) + 0.5 = 4.5; w̃ = 0 − 8/4.5.
  assert float(updates['w'][0, 0]) == pytest.approx(-8 / 4.5, rel=1e-6)


# ------------------------------------------------- The subproblem, exactly.


def exact_group_prox(u, d, tau):
  """``argmin ½‖w − u‖²_D + τ‖w‖`` for one group (float64): ``w = 0`` if
  ``‖D u‖ ≤ τ``, else ``w_i = d_i u_i / (d_i + τ/r)`` with ``r = ‖w‖`` the
  root of ``Σ (d_i u_i r / (d_i r + τ))² = r²``, found by bisection."""
  if np.linalg.norm(d * u) <= tau:
    return np.zeros_like(u)
  f = lambda r: np.sum((d * u / (d * r + tau)) ** 2) - 1.0
  lo, hi = 0.0, np.linalg.norm(u)  # f(0) > 0 >= f(‖u‖).
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
  r = (lo + hi) / 2
  return d * u / (d + tau / r)


@pytest.mark.parametrize('solver', ['pgd', 'newton'])
@pytest.mark.parametrize('seed', range(3))
def test_group_subproblem_solution_against_the_exact_one(seed, solver):
  """The inexact solver reaches the exact minimiser's objective (the
  stopping rule watches the float32 objective, which stalls once the iterate
  is within about 1e-4 of the minimiser), with exactly its zero groups;
  Newton's method reaches the minimiser itself to float32 rounding, in a
  handful of iterations."""
  rng = np.random.default_rng(seed)
  shape = (6, 5)
  p0 = rng.normal(size=shape).astype(F)
  v = rng.normal(size=shape).astype(F)
  d = rng.uniform(0.5, 2.0, size=shape).astype(F)
  # λ between the group norms of D·u = D·p0 − v: some groups are zero.
  norms = np.sort(np.linalg.norm(d * p0 - v, axis=0))
  t, lam = 1.0, float(norms[1] + norms[2]) / 2 / math.sqrt(shape[0])
  w, steps = preconditioned.solve(
      rda_optax.group_lasso(lam),
      {'w': p0},
      {'w': v},
      {'w': d},
      {'w': True},
      t,
      0,
      start={'w': p0},
      solver=solver,
  )
  w = np.asarray(w['w']).astype(float)
  u = p0.astype(float) - v / d.astype(float)
  tau = t * lam * math.sqrt(shape[0])
  want = np.stack(
      [exact_group_prox(u[:, j], d[:, j].astype(float), tau) for j in range(5)],
      axis=1,
  )

  def objective(x):
    diff = x - p0
    return (
        np.sum(diff * v)
        + 0.5 * np.sum(d * diff**2)
        + tau * np.linalg.norm(x, axis=0).sum()
    )

  assert (want == 0).all(0).sum() == 2  # Zero groups and others.
  np.testing.assert_array_equal((w == 0).all(0), (want == 0).all(0))
  gap = objective(w) - objective(want)
  assert -1e-6 <= gap <= 2e-6 * (abs(objective(want)) + 1), gap
  if solver == 'pgd':
    np.testing.assert_allclose(w, want, atol=2e-3)
    assert int(steps) > 3
  else:
    np.testing.assert_allclose(w, want, rtol=2e-6, atol=1e-6)
    assert 1 <= int(steps) <= 6


@pytest.mark.parametrize(
    'reg',
    [rda_optax.group_lasso(0.4), rda_optax.sparse_group_lasso(0.2, 0.4)],
    ids=['group_lasso', 'sparse_group_lasso'],
)
def test_a_vector_is_one_group_per_entry(reg):
  """A 1-D leaf (one entry per group): Newton's closed form, the soft
  threshold of ``D p0 − v`` over ``D``, is where the loop converges."""
  rng = np.random.default_rng(1)
  p0, v = (rng.normal(size=7).astype(F) for _ in range(2))
  d = rng.uniform(0.2, 3.0, size=7).astype(F)
  got, steps = preconditioned.solve(reg, p0, v, d, True, 1.0, 0, start=p0)
  want, _ = preconditioned.solve(
      reg,
      p0,
      v,
      d,
      True,
      1.0,
      0,
      start=p0,
      solver='pgd',
      rtol=None,
      max_iters=500,
  )
  np.testing.assert_allclose(got, want, atol=3e-7)
  assert int(steps) == 0 and 0 < int((np.asarray(got) == 0).sum()) < 7


def test_a_nan_reaches_its_group_only():
  """A NaN in the linear term (a diverged gradient) makes its group NaN,
  as ℓ1's threshold keeps it, not silently zero (the loop's screen kept
  it too); the other groups are solved."""
  rng = np.random.default_rng(1)
  p0, v = (rng.normal(size=(4, 3)).astype(F) for _ in range(2))
  d = rng.uniform(0.2, 3.0, size=(4, 3)).astype(F)
  v[0, 1] = np.nan
  for solver in ('newton', 'pgd'):
    w, _ = preconditioned.solve(
        rda_optax.group_lasso(0.1),
        p0,
        v,
        d,
        True,
        1.0,
        0,
        start=p0,
        solver=solver,
    )
    w = np.asarray(w)
    assert np.isfinite(w[:, [0, 2]]).all()
    # Newton's solve: the group; the loop's shrink: the entry.
    assert np.isnan(w[:, 1]).all() if solver == 'newton' else np.isnan(w[0, 1])


@pytest.mark.parametrize('solver', ['newton', 'pgd'])
@pytest.mark.parametrize('factory', [rda_optax.ramda, rda_optax.prox_adamw])
def test_an_empty_leaf_is_no_subproblem(factory, solver):
  """A zero-size leaf (an empty kernel) is left as it is, by either solver
  (its group reductions raised a zero-size reduction error)."""
  params = {'w': jnp.ones((4, 3)), 'e': jnp.zeros((0, 3))}
  grads = {'w': jnp.full((4, 3), 0.5), 'e': jnp.zeros((0, 3))}
  opt = factory(0.1, rda_optax.group_lasso(0.1), solver=solver)
  state = opt.init(params)
  updates, state = jax.jit(opt.update)(grads, state, params)
  params = optax.apply_updates(params, updates)
  assert params['e'].shape == (0, 3) and np.isfinite(params['w']).all()
  sparse = rda_optax.sparse_params(state, params)
  assert sparse['e'].shape == (0, 3)


def test_newtons_method_is_not_cut_by_the_loops_budget():
  """``max_iters`` bounds the proximal-gradient loop: Newton's method runs
  to convergence whatever it is, so the point that ``sparse_params``
  recomputes from the state is the one the update moved to (with
  ``max_iters=1`` the update's solve was cut after one iteration, and the
  recomputation's was not)."""
  params, grads = random_params(), random_grads(3)
  reg = rda_optax.group_lasso(0.05)
  opt = rda_optax.ramda(0.1, reg, momentum=0.5, max_iters=1)
  traj, state, inner = run_with_state(opt, params, grads)
  ref, _, _ = run_with_state(
      rda_optax.ramda(0.1, reg, momentum=0.5), params, grads
  )
  assert max(inner) > 1
  sparse = rda_optax.sparse_params(state, traj[-1])
  for k in SHAPES:
    np.testing.assert_array_equal(traj[-1][k], ref[-1][k])
    if k == 'bias':
      continue
    # w_k = ½ w_{k−1} + ½ w̃_k: the w̃_k the update used.
    used = 2 * traj[-1][k] - traj[-2][k]
    np.testing.assert_allclose(sparse[k], used, rtol=1e-5, atol=1e-6)


def test_l1_and_l0_subproblems_are_exact_per_coordinate():
  """Brute force on a grid: the closed forms minimise
  ``½ d (w − u)² + t λ R(w)`` coordinate by coordinate."""
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(40,)).astype(F)
  v = rng.normal(size=(40,)).astype(F)
  d = rng.uniform(0.2, 3.0, size=(40,)).astype(F)
  grid = np.linspace(-4, 4, 80001)
  u = p0.astype(float) - v / d.astype(float)
  for reg, pen in (
      (rda_optax.l1(0.3), lambda w: 0.3 * np.abs(w)),
      (rda_optax.l0(0.3), lambda w: 0.3 * (w != 0)),
  ):
    w, steps = preconditioned.solve(
        reg, p0, v, d, True, 1.0, 0, start=p0, max_iters=10, rtol=1e-8
    )
    assert int(steps) == 0
    for i in range(40):
      obj = lambda x: 0.5 * d[i] * (x - u[i]) ** 2 + pen(x)
      best = min(obj(grid).min(), obj(0.0))
      assert obj(float(w[i])) <= best + 1e-6


def test_projections_use_the_metric():
  """Under ``‖·‖_D`` the projection onto "k nonzeros" keeps the largest
  ``d_i u_i²``, not the largest ``|u_i|``."""
  u = jnp.array([[1.0], [0.9], [0.1], [0.2]])
  d = jnp.array([[1.0], [4.0], [1.0], [1.0]])
  p0, v = u, jnp.zeros_like(u)
  for reg in (
      rda_optax.nm_constraint(1, 4),
      rda_optax.sparsity_constraint(0.75, scope='layer'),
  ):
    w, _ = preconditioned.solve(
        reg, {'w': p0}, {'w': v}, {'w': d}, {'w': True}, 1.0, 0, start={'w': p0}
    )
    np.testing.assert_array_equal(
        np.asarray(w['w'])[:, 0], np.array([0.0, 0.9, 0.0, 0.0], F)
    )


# -------------------------------------------- A convex problem, known optimum.


def lasso_problem(group: bool, seed=0):
  """``½/n ‖Xw − y‖² + λR(w)`` built so that a chosen sparse ``w*`` is its
  unique minimiser: ``y = Xw* + r`` with ``Xᵀr/n = λ·s``, ``s`` a
  subgradient of ``R`` at ``w*`` strictly inside it off the support."""
  rng = np.random.default_rng(seed)
  n, d_in, d_out = 200, 12, 4
  x = rng.normal(size=(n, d_in))
  w_star = rng.normal(size=(d_in, d_out))
  lam = 0.1
  if group:  # Input-neuron groups (rows); rows 0, 3, 7 are zero.
    zero = [0, 3, 7]
    w_star[zero] = 0.0
    s = w_star / np.linalg.norm(w_star, axis=1, keepdims=True).clip(1e-30)
    s *= math.sqrt(d_out)
    for i in zero:
      z = rng.normal(size=d_out)
      s[i] = 0.6 * math.sqrt(d_out) * z / np.linalg.norm(z)
    reg = rda_optax.group_lasso(lam, groups='input')
  else:
    w_star[rng.random(w_star.shape) < 0.4] = 0.0
    s = np.where(
        w_star != 0, np.sign(w_star), rng.uniform(-0.7, 0.7, w_star.shape)
    )
    reg = rda_optax.l1(lam)
  r = x @ np.linalg.solve(x.T @ x, n * lam * s)
  y = x @ w_star + r
  return jnp.asarray(x, F), jnp.asarray(y, F), w_star, reg


@pytest.mark.parametrize('group', [False, True], ids=['l1', 'group_lasso'])
def test_ramda_converges_to_the_known_optimum(group):
  x, y, w_star, reg = lasso_problem(group)
  loss = lambda p: 0.5 * jnp.mean(jnp.sum((x @ p['w'] - y) ** 2, axis=-1))
  opt = rda_optax.ramda(
      0.05, reg, momentum=0.9, restart_steps=(1000, 2000, 3000)
  )
  params = {'w': jnp.zeros_like(jnp.asarray(w_star, F)) + 0.01}

  def body(carry, _):
    p, s = carry
    u, s = opt.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, u), s), None

  (params, state), _ = jax.jit(
      lambda c: jax.lax.scan(body, c, None, length=4000)
  )((params, opt.init(params)))
  w = np.asarray(rda_optax.sparse_params(state, params)['w'])
  np.testing.assert_allclose(w, w_star, atol=2e-3)
  np.testing.assert_array_equal(w == 0, w_star == 0)  # Exact zeros.


# ----------------------------------------------- Sparse point, ASR, errors.


@pytest.mark.xla_default
@pytest.mark.parametrize(
    'reg',
    [rda_optax.l1(0.02), rda_optax.nm_constraint(2, 4)],
    ids=['l1', '2:4'],
)
def test_the_recomputed_sparse_point_is_the_updates_to_the_bit(reg):
  """Without momentum the iterate is ``w̃``: ``sparse_params`` recomputes it
  from the state (another program) and must give the same bits, zeros
  included, jitted or not."""
  params, grads = random_params(), random_grads(6)
  traj, state = run(rda_optax.ramda(0.05, reg, momentum=0.0), params, grads)
  for sparse in (
      rda_optax.sparse_params(state, traj[-1]),
      jax.jit(rda_optax.sparse_params)(state, traj[-1]),
  ):
    for k in SHAPES:
      np.testing.assert_array_equal(sparse[k], traj[-1][k], err_msg=k)
  assert any((np.asarray(traj[-1][k]) == 0).any() for k in SHAPES)


@pytest.mark.xla_default
def test_asr_retrains_from_the_prox_point_and_keeps_its_zeros():
  params, grads = random_params(), random_grads(16)
  inner = rda_optax.ramda(0.05, rda_optax.l1(0.02), momentum=0.9)
  opt = rda_optax.asr(inner, start_step=8)
  traj, state = run(opt, params, grads)
  _, ref_state = run(inner, params, grads[:8])
  w_tilde = np.asarray(rda_optax.sparse_params(ref_state)['conv'])
  frozen = w_tilde == 0
  assert frozen.any()
  for t in traj[8:]:
    assert (t['conv'][frozen] == 0).all()
  sparse = np.asarray(rda_optax.sparse_params(state, traj[-1])['conv'])
  assert (sparse[frozen] == 0).all()


def test_asr_with_an_nm_constraint_keeps_the_pattern():
  params, grads = random_params(), random_grads(12)
  opt = rda_optax.asr(
      rda_optax.ramda(0.05, rda_optax.nm_constraint(2, 4), momentum=0.9),
      start_step=6,
      retrain=optax.adam(1e-3),
  )
  traj, state = run(opt, params, grads)
  for t in traj[6:]:
    assert rda_optax.satisfies_nm(t['conv'], 2, 4)
    assert rda_optax.satisfies_nm(t['dense'], 2, 4)
  assert rda_optax.satisfies_nm(
      rda_optax.sparse_params(state, traj[-1])['dense'], 2, 4
  )


def test_momentum_zero_keeps_no_copy_and_bf16():
  params, grads = random_params(), random_grads(2)
  opt = rda_optax.ramda(0.05, rda_optax.l1(0.05), momentum=0.0)
  traj, state = run(opt, params, grads)
  assert state.prox_params is None
  assert (traj[-1]['conv'] == 0).any()
  bf = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
  opt = rda_optax.ramda(0.05, rda_optax.group_lasso(0.05), solver='pgd')
  traj, state = run(opt, bf, grads)
  assert traj[-1]['conv'].dtype == jnp.bfloat16
  assert state.grad_sum['conv'].dtype == jnp.float32
  assert state.sq_sum['conv'].dtype == jnp.float32
  assert state.prox_params['conv'].dtype == jnp.bfloat16


def test_the_state_stores_the_prox_point_only_for_the_inner_loop():
  """Exactly solved subproblems keep three parameter-sized trees and
  recompute ``w̃`` (before the first update: ``w0``); the inner loop's
  solution is stored; an N:M constraint writes its scores to the state's
  buffer."""
  params, grads = random_params(), random_grads(1)
  state = rda_optax.ramda(0.05, rda_optax.l1(0.05)).init(params)
  assert state.prox_params is None and state.holds_sparse_point()
  assert state.prox_buffer == ()
  sparse = state.sparse_point()
  for k in SHAPES:
    np.testing.assert_array_equal(sparse[k], params[k])
  opt = rda_optax.ramda(0.05, rda_optax.nm_constraint(2, 4), momentum=0.9)
  _, state = run(opt, params, grads)
  assert state.prox_params is None
  # One score buffer per selected leaf (the kernels), float32.
  assert [x.shape for x in state.prox_buffer] == [
      SHAPES['conv'],
      SHAPES['dense'],
  ]
  assert all(x.dtype == jnp.float32 for x in state.prox_buffer)
  assert rda_optax.satisfies_nm(state.sparse_point()['conv'], 2, 4)
  opt = rda_optax.ramda(0.05, rda_optax.group_lasso(0.05), solver='pgd')
  state = jax.eval_shape(opt.init, params)
  assert state.prox is None and state.prox_params is not None
  assert state.prox_buffer == ()
  # Newton's solution does not depend on where it starts: recomputed, equal
  # to the update's to float32 rounding.
  for reg, axes in (
      (rda_optax.group_lasso(0.55), (0, 1, 2)),
      (rda_optax.sparse_group_lasso(0.02, 0.55, groups='input'), (0, 1, 3)),
  ):
    opt_m = rda_optax.ramda(0.05, reg, momentum=0.9)
    traj, state = run(opt_m, params, random_grads(3))
    assert state.prox_params is None and state.prox is not None
    assert 1 <= int(state.inner_steps) <= 8
    sparse = rda_optax.sparse_params(state)
    # w̃ from w_k = 0.1·w̃ + 0.9·w_{k−1}.
    prev, _ = run(opt_m, params, random_grads(2))
    for k in SHAPES:
      tilde = (traj[-1][k] - 0.9 * prev[-1][k]) / 0.1
      np.testing.assert_allclose(sparse[k], tilde, rtol=1e-4, atol=1e-5)
    zero = (np.asarray(sparse['conv']) == 0).all(axis=axes)
    assert zero.any() and not zero.all()


def test_inject_hyperparams_matches_the_plain_transform():
  """To float32 rounding, the inner loop taking its 100 steps (rtol=None):
  the two programs compile differently and differ by an ulp (about 1e-8
  here), and where the default tolerance (1e-8, below float32's resolution)
  stops the loop is a comparison of two float32 objectives that such an
  ulp flips, moving the iterate by the solver's tolerance (as for the
  transcription test above)."""
  lr = 0.05
  inj = optax.inject_hyperparams(rda_optax.ramda)(
      learning_rate=lr,
      regularizer=rda_optax.group_lasso(0.02),
      momentum=0.9,
      rtol=None,
  )
  ref = rda_optax.ramda(
      lr, rda_optax.group_lasso(0.02), momentum=0.9, rtol=None
  )
  params, grads = random_params(), random_grads(3)
  got, state = run(inj, params, grads)
  want, _ = run(ref, params, grads)
  np.testing.assert_allclose(
      got[-1]['conv'], want[-1]['conv'], rtol=1e-5, atol=1e-7
  )
  assert int(state.hyperparams['max_iters']) == 100


@pytest.mark.parametrize(
    'make, match',
    [
        (lambda: rda_optax.ramda(0.0), 'learning_rate > 0'),
        (lambda: rda_optax.ramda(0.1, momentum=1.0), 'momentum in'),
        (lambda: rda_optax.ramda(0.1, epsilon=-1.0), 'epsilon'),
        (lambda: rda_optax.ramda(0.1, epsilon=0.0), 'epsilon > 0'),
        (lambda: rda_optax.ramda(0.1, regularizer=1e-4), 'Regularizer'),
        (lambda: rda_optax.ramda(0.1, restart_steps=(-1,)), 'restart_steps'),
        (lambda: rda_optax.ramda(0.1, max_iters=0), 'max_iters'),
        (lambda: rda_optax.ramda(0.1, rtol=-1.0), 'rtol'),
        (lambda: rda_optax.ramda(0.1, solver='exact'), "solver='newton'"),
        (lambda: rda_optax.prox_adamw(0.1, solver=None), "solver='pgd'"),
    ],
)
def test_invalid_hyperparameters(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()


def test_inside_optax_masked():
  """Under optax.masked the kernels take RAMDA; the bias's gradients pass
  through untouched (optax's rule for masked-out leaves)."""
  params, grads = random_params(), random_grads(4)
  opt = optax.masked(
      rda_optax.ramda(0.05, rda_optax.l1(0.05), momentum=0.0),
      {'conv': True, 'dense': True, 'bias': False},
  )
  traj, _ = run(opt, params, grads)
  alone, _ = run(
      rda_optax.ramda(0.05, rda_optax.l1(0.05), momentum=0.0),
      {k: params[k] for k in ('conv', 'dense')},
      [{k: g[k] for k in ('conv', 'dense')} for g in grads],
  )
  np.testing.assert_array_equal(traj[-1]['conv'], alone[-1]['conv'])
  np.testing.assert_allclose(
      traj[-1]['bias'],
      params['bias'] + sum(g['bias'] for g in grads),
      rtol=1e-6,
  )
