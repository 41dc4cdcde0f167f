"""pyinfra's ``@operation()``, keeping the operation's own generator within reach.

A deploy that already read the host's state asks an operation whether it has anything to do
(``next(op.decide(...))``) before calling it: each operation call costs pyinfra a walk of the
Python stack (~6 ms), more than the whole state read on a converged host. ``decide`` is the
undecorated generator; it runs the same code the operation runs, so the operation stays the one
place that decides (pyinfra calls it again when the operation executes).
"""
from pyinfra.api import operation as pyinfra_operation


def operation(**kwargs):
    def wrap(func):
        op = pyinfra_operation(**kwargs)(func)
        op.decide = func
        return op
    return wrap
