"""`python -m bench`: the one benchmark command (bench/fleet.py)."""
from bench.fleet import main

main()
