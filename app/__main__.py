"""`python -m gensessions`: the same as the `gensessions` command."""
from .console import main

main(prog_name="gensessions")
