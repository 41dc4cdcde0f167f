"""Facts only: is every host still locked down? Exit status 1 when a check fails."""
from pyinfra_lockdown import audit

audit()
