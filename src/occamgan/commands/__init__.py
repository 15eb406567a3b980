"""CLI commands, one module each; importing this package registers them on ``cli.app``."""
from .._autoload import import_submodules

import_submodules(__name__, __path__)
