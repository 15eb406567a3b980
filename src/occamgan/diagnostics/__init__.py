"""Diagnostics of trained games: sharpness (Hessian eigenvalues) of the players' losses."""
