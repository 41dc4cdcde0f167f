"""The lab tier: ``test_*.py`` are the tests (real boxes, root; ``@pytest.mark.lab``).

The other modules here are helpers the tests share, not tests:

- ``deploy_helpers``: converge boxes with the pyinfra CLI, fresh credentials, mail and audits
- ``faults``: a run stopped at a breakpoint and the box judged from outside after a fault
- ``breakpoints``: the pyinfra CLI with a breakpoint (what ``faults`` runs)
- ``fault_ledger``: the fault suite's ledger and docs/reliability.md's table
- ``secret_forms``: every form of a secret that no output or readable file may hold
"""
