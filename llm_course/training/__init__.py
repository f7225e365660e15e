"""Layer 3, learning (taught in 00 and 02): `fit` and its config, the parts it is built from
(precision, optimizer, batches, compilation, divergence, TensorBoard), checkpoints, history,
the live plot, evaluation, the cost receipt and the hyperparameter panel.
May import `env`, `data` and `models`."""
