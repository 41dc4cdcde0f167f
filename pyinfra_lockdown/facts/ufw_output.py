"""The kernel's copy of ufw's OUTGOING rules (lockdown's mail egress rules live there).

``UfwConfig`` checks that the kernel runs ufw's incoming side (INPUT's jump, the user input
rules); this fact does the same for the outgoing side, so an ``iptables -F ufw-user-output``
or a removed OUTPUT jump is a ``kernel_problems`` entry (the deploy's ``ufw.enable`` reloads,
the audit's ``ufw.kernel`` FAILs) rather than rules that ``ufw status`` lists and nothing
applies. A fact of its own (a section of the one combined read): ``UfwConfig``'s captured
fixtures keep their command.
"""
from __future__ import annotations

import re

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError

from .._typing import override
from .combined import SHARED_COMMANDS, awk_over_saved

OUTPUT = "ufw output: "  # + v4 before-output=1 user-output-jump=1 user-output=4 user-rules=4
OUTPUT_LINE = re.compile(r"^v(?P<family>[46]) before-output=(?P<jump>\d+) "
                         r"user-output-jump=(?P<user_jump>\d+) user-output=(?P<loaded>\d+) "
                         r"user-rules=(?P<declared>\d+)$")

# Over user.rules (``r``: how many user output rules it declares), then the kernel's save of
# every table (its filter table: OUTPUT's jumps down to ufw's user output chain, its rules).
_OUTPUT_AWK = (
    'FILENAME == r { if (index($0, "-A " c "-user-output ") == 1) n++; next } '
    '/^\\*/ {t = $1} t != "*filter" {next} $0 == "-A OUTPUT -j " c "-before-output" {j++} '
    '$0 == "-A " c "-before-output -j " c "-user-output" {k++} '
    '$1 == "-A" && $2 == c "-user-output" {u++} '
    f'END {{printf "{OUTPUT}v%s before-output=%d user-output-jump=%d user-output=%d '
    'user-rules=%d\\n", f, j, k, u, n}'
)

_COMMAND = (
    "if grep -q -i '^ENABLED=yes' /etc/ufw/ufw.conf 2>/dev/null; then "
    "for f in 4 6; do [ $f = 6 ] && [ ! -d /proc/sys/net/ipv6 ] && continue; "
    "if [ $f = 4 ]; then s=iptables-save c=ufw r=/etc/ufw/user.rules; "
    "else s=ip6tables-save c=ufw6 r=/etc/ufw/user6.rules; fi; "
    '[ -r "$r" ] || r=/dev/null; '
    + awk_over_saved("$s", "awk -v f=$f -v c=$c -v r=\"$r\" '" + _OUTPUT_AWK + "'",
                     before='"$r"')
    + "; done; fi; true"
)


class UfwOutputKernel(FactBase[dict[str, dict[str, int]]]):
    """
    While ufw.conf says ``ENABLED=yes``, per family (IPv6 only when the kernel has it): OUTPUT's
    jump to ``ufw[6]-before-output``, that chain's jump to ``ufw[6]-user-output``, and the
    number of ``ufw[6]-user-output`` rules in the kernel against user.rules'. Run as root.

    .. code:: python

        {"v4": {"before_output": 1, "user_jump": 1, "loaded": 4, "declared": 4}, "v6": {...}}

    ``{}`` when ufw is disabled or not installed.
    """

    default = dict
    shared_reads = SHARED_COMMANDS  # one save per family, shared in the combined read

    @override
    def command(self) -> str:
        return _COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for line in (line.strip() for line in output):
            if not line:
                continue
            match = OUTPUT_LINE.match(line[len(OUTPUT):]) if line.startswith(OUTPUT) else None
            if not match:
                raise FactProcessError(f"unexpected ufw output line: {line!r}")
            found[f"v{match['family']}"] = {
                "before_output": int(match["jump"]), "user_jump": int(match["user_jump"]),
                "loaded": int(match["loaded"]), "declared": int(match["declared"])}
        return found


def output_problems(config: dict | None, output: dict | None) -> list[str]:
    """What the kernel runs of ufw's outgoing side that user.rules does not say (only while
    ufw.conf says enabled; IPv6 only with IPV6=yes and a kernel that has IPv6)."""
    if not config or not config.get("enabled"):
        return []
    problems = []
    families = ("v4", "v6") if config.get("ipv6") else ("v4",)
    ipv6_kernel = bool((config.get("kernel") or {}).get("v6"))
    for family in families:
        label, counts = f"IPv{family[1]}", (output or {}).get(family)
        if counts is None:
            if family == "v4" or ipv6_kernel:
                problems.append(f"{label}: the kernel's outgoing rules could not be read")
        elif not counts["before_output"] or not counts["user_jump"]:
            problems.append(f"{label}: outgoing traffic does not pass ufw's user rules "
                            "(no jump from OUTPUT to them)")
        elif counts["loaded"] != counts["declared"]:
            problems.append(f"{label}: {counts['loaded']} of the {counts['declared']} outgoing "
                            "user rule lines are loaded in the kernel")
    return problems


def with_output_kernel(config: dict | None, output: dict | None) -> dict | None:
    """``UfwConfig``'s value with the outgoing side's problems added to ``kernel_problems``
    (a copy; None stays None): what the deploy's ``ufw.enable`` and the audit decide on."""
    if config is None:
        return None
    problems = output_problems(config, output)
    if not problems:
        return config
    return {**config, "kernel_problems": [*config.get("kernel_problems", []), *problems]}
