"""Which tests must run on one pytest-xdist worker, one after another (issue 23).

`make test` runs `pytest -n N --dist loadgroup`. xdist's own loadgroup reads `xdist_group`
marks by appending "@group" to each item's `_nodeid`; pytest 9 keeps a node's id elsewhere
(`_id`), so with pytest 9.2 and xdist 3.8 that suffix never shows and every test is scheduled
alone (found when a module-scoped fixture was set up on two workers). So the grouping is done
here instead:

- each worker writes, after collection, a map nodeid -> group into the run's directory (the
  controller's, from the environment; every worker collects the same tests, so the same map);
- the controller's scheduler (`GroupScheduling`, xdist's LoadScopeScheduling with its own
  `_split_scope`) reads it: a test in the map goes with its group, any other test is a group
  of its own (handed out one by one, as `--dist load` does).

Groups keep the collection order (tests/conftest.py puts the longest first).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

FILE_NAME = "xdist-groups.json"


def write(run_dir: Path, groups: dict[str, str]) -> None:
    """A worker's: the map, written whole (a rename), so the controller never reads half."""
    partial = run_dir / f"{FILE_NAME}.{os.getpid()}"
    partial.write_text(json.dumps(groups, sort_keys=True))
    os.replace(partial, run_dir / FILE_NAME)


def read(run_dir: Path | None) -> dict[str, str]:
    path = (run_dir or Path("/nonexistent")) / FILE_NAME
    return json.loads(path.read_text()) if path.exists() else {}


class GroupScheduling(LoadScopeScheduling):
    """Whole groups to one worker; ungrouped tests one by one; in collection order."""

    def __init__(self, config, log=None, run_dir: Path | None = None):
        super().__init__(config, log)
        self._run_dir = run_dir
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:  # first asked once every worker has collected
            self._groups = read(self._run_dir)
        group = self._groups.get(nodeid)
        return f"group:{group}" if group else nodeid
