"""pyinfra config of the simulated-fleet runs (bench/simfleet.py): a 30 s connect deadline.

1,000 simulated hosts make their handshakes (and, in a first converge, the dead-man check's
second connection) in ONE local Python server that shares the controller's 2 cores; at
pyinfra's default of 10 s, 769 of the 1,000 dead-man checks of a first converge timed out
under a load average of 40-70 (bench/RESULTS.md). The deadline costs no CPU: it bounds waiting."""
from pyinfra import config

config.CONNECT_TIMEOUT = 30
