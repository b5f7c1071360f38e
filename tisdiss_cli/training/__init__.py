"""Training: data (dynamic mixing, pre-mixed sets), the multi-loss, configuration and recipes,
and the training loop. Imports evaluation (test-set layouts) and the layers below it."""
