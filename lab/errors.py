"""Errors that tell the user what went wrong and what to do next."""
from __future__ import annotations


class LabError(RuntimeError):
    def __init__(self, what: str, todo: str = "", detail: str = ""):
        self.what, self.todo, self.detail = what, todo, detail
        message = what
        if detail:
            message += "\n" + detail.rstrip()
        if todo:
            message += f"\n  -> {todo}"
        super().__init__(message)
