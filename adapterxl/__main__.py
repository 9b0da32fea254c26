"""``python -m adapterxl ...``: the same as the ``adapterxl`` command (``accelerate launch -m adapterxl``)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="adapterxl")
