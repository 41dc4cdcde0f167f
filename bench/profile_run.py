"""Run the pyinfra CLI under pyinstrument and write its text profile (the controller's view).

    python -m bench.profile_run OUT.txt PYINFRA-ARGS...

gevent is patched before pyinstrument starts (pyinfra_cli patches at import, which breaks
under `python -m pyinstrument`); the profile then covers imports, connecting, the deploy code
and the operation run, with the time spent waiting on hosts shown where it is waited for.
"""
from __future__ import annotations

import sys

from gevent import monkey

monkey.patch_all()

from pyinstrument import Profiler  # noqa: E402


def main(argv: list[str]) -> int:
    out, args = argv[0], argv[1:]
    profiler = Profiler(interval=0.001, async_mode="disabled")
    sys.argv = ["pyinfra", *args]
    status = 0
    profiler.start()
    try:
        from pyinfra_cli.main import main as pyinfra_main

        pyinfra_main()
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 0
    finally:
        profiler.stop()
        with open(out, "w") as handle:
            handle.write(profiler.output_text(unicode=True, show_all=False))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
