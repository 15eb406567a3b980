"""occamgan: train and judge GANs the Bayesian way.

GANs are Bayesian neural networks with partial stochasticity (only the latent z is random);
adversarial objectives are proxies of the marginal likelihood, and Occam's razor motivates
regularisers that seek flat, simple solutions (Filippone & Linhard 2025).
"""
from .api import LoadedRun, RunResult, bdmc, evaluate_metrics, evaluate_run, evidence, load_run, sample, train
from .config import Config, load_config

__version__ = "0.1.0"
__all__ = ["Config", "LoadedRun", "RunResult", "bdmc", "evaluate_metrics", "evaluate_run", "evidence", "load_config",
           "load_run", "sample", "train", "__version__"]
