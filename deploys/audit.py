"""lockdown audit: is every host still as the deploy left it? Facts only, nothing changes.

    pyinfra -y inventories/prod.py deploys/audit.py                 # table on stdout
    pyinfra -y inventories/prod.py deploys/audit.py --data audit_json=-   # JSON on stdout

Exit status 1 when a check fails or a host is unreachable. Without ``-y`` pyinfra asks to
"execute" the local report step: nothing touches a host.
"""
from pyinfra_lockdown import audit

audit()
