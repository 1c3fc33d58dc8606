"""The methods of the default table, with ``optax.sgd(lr, momentum=0.9)``
first (the reference), and the cold-search twin of the sparsity constraint
its two ``sparsity_constraint`` rows compare."""

from __future__ import annotations

import optax

import rda_optax


class ColdSparsityConstraint(rda_optax.SparsityConstraint):
  """``sparsity_constraint`` whose threshold search starts cold at every
  step (its state is never carried over): the same projection, for
  comparison."""

  def prox_tree_with_state(self, tree, selected, t, count, state):
    return super().prox_tree_with_state(
        tree,
        selected,
        t,
        count,
        rda_optax.threshold_state(state.value.shape[0]),
    )

  def prox_computed(
      self, operands, compute, args, zero, count, state, index=None
  ):
    return super().prox_computed(
        operands,
        compute,
        args,
        zero,
        count,
        rda_optax.threshold_state(state.value.shape[0]),
        index,
    )


def optimizers(lr: float, lam: float):
  return {
      'optax.sgd(momentum=0.9)': optax.sgd(lr, momentum=0.9),
      'rda(l1)': rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(lam)),
      'prox_sgd(l1, momentum=0.9)': rda_optax.prox_sgd(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'prox_sgd(sparsity_constraint(0.95), momentum=0.9)': (
          rda_optax.prox_sgd(
              lr, rda_optax.sparsity_constraint(0.95), momentum=0.9
          )
      ),
      'rda(group_lasso)': rda_optax.rda(
          gamma=1.0, regularizer=rda_optax.group_lasso(lam)
      ),
      'asr(rda(l1))': rda_optax.asr(
          rda_optax.rda(gamma=1.0, regularizer=rda_optax.l1(lam))
      ),
      'rmda(l1, momentum=0.9)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.9
      ),
      'rmda(l1, momentum=0)': rda_optax.rmda(
          lr, rda_optax.l1(lam), momentum=0.0
      ),
      # The papers' other regularizers, as RMDA takes them.
      'rmda(l0)': rda_optax.rmda(lr, rda_optax.l0(lam), momentum=0.9),
      'rmda(transformed_l1)': rda_optax.rmda(
          lr, rda_optax.transformed_l1(lam), momentum=0.9
      ),
      'rmda(sparse_group_lasso)': rda_optax.rmda(
          lr, rda_optax.sparse_group_lasso(lam, lam), momentum=0.9
      ),
      'rmda(sparsity_constraint(0.95))': rda_optax.rmda(
          lr, rda_optax.sparsity_constraint(0.95), momentum=0.9
      ),
      'rmda(sparsity_constraint(0.95)), cold search': rda_optax.rmda(
          lr, ColdSparsityConstraint(0.95), momentum=0.9
      ),
  }
