"""Approximate Bayesian inference for GANs: MC dropout (and, later, marginal-likelihood estimates)."""
