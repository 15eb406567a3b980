"""``python -m occamgan``: the CLI; under torchrun a failing rank's traceback goes to the
elastic agent's report (``torchrun --nproc-per-node N -m occamgan train ...``)."""
from .cli import main
from .distributed import record

if __name__ == "__main__":
    record(main)()
