"""WGAN-GP training model, backend-agnostic; gradients behind one small per-backend interface."""
