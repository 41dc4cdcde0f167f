"""python -m lab demo | up [N] | down | status | ssh NAME [CMD...] | exec -- ARGV | build"""
from __future__ import annotations

import argparse
import os
import sys
import time

from . import image
from .api import Lab
from .errors import LabError
from .network import in_netns, require


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Disposable Debian boxes for lockdown tests.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="network, image, stand-in, and N fresh boxes (default 1)")
    up.add_argument("count", nargs="?", type=int, default=1)
    up.add_argument("--suite", action="append", choices=image.SUITES, metavar="SUITE",
                    help=f"Debian release of the boxes ({', '.join(image.SUITES)}; default "
                         f"{image.DEFAULT_SUITE}); repeat it once per box for a mixed lab")
    _image_option(up)
    commands.add_parser("down", help="stop and remove everything the lab created")
    commands.add_parser("status", help="boxes, addresses, PIDs, alive or not")
    ssh = commands.add_parser("ssh", help="SSH into a box as deploy (from the lab namespace)")
    ssh.add_argument("name")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    execute = commands.add_parser("exec", help="run ARGV inside the lab namespace, e.g. pyinfra")
    execute.add_argument("argv", nargs=argparse.REMAINDER)
    demo = commands.add_parser("demo", help="the logwatch story: a noisy Internet Site box, the "
                               "deploy, the quiet report; then a no-change converge and the audit")
    _image_option(demo, default="preinstalled",
                  extra="; minimal or standard: lockdown installs Postfix and ufw from the lab's "
                        "mirror instead of the story")
    build = commands.add_parser("build", help="build the box image (cached by recipe hash)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--suite", choices=image.SUITES, default=image.DEFAULT_SUITE)
    _image_option(build)
    args = parser.parse_args(argv)

    lab = Lab()
    try:
        return COMMANDS[args.command](lab, args)
    except LabError as error:
        print(f"lab: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted; `python -m lab down` cleans up whatever was started", file=sys.stderr)
        return 130


def _image_option(parser, default: str = image.DEFAULT_FLAVOR, extra: str = "") -> None:
    parser.add_argument("--image", choices=image.FLAVORS, default=default,
                        help=f"box image (default {default}{extra}); minimal and standard boxes "
                             "install packages from the lab's mirror (lab/README.md)")


def cmd_up(lab: Lab, args) -> int:
    started = time.monotonic()
    lab.ensure_network()
    suites = args.suite or [image.DEFAULT_SUITE]
    if len(suites) == 1:
        suites = suites * args.count
    elif len(suites) != args.count:
        raise LabError(f"{args.count} boxes but {len(suites)} --suite options",
                       "give --suite once (every box) or once per box")
    lab.standin_start()
    boxes = lab.up(args.count, suites=suites, flavor=args.image)
    print(f"{len(boxes)} box(es) ready in {time.monotonic() - started:.1f}s:")
    for box in boxes:
        print(f"  {box.name:8} {box.ipv4:12} {box.ipv6:10} {box.suite} {box.flavor}")
    print("next: python -m lab ssh box1 | python -m lab exec -- pyinfra inventories/lab.py ... | python -m lab down")
    return 0


def cmd_down(lab: Lab, args) -> int:
    lab.down()
    print("lab is down")
    return 0


def cmd_status(lab: Lab, args) -> int:
    status = lab.status()
    standin = status["standin"]
    print(f"lab netns {status['netns']}: {'present' if status['netns_present'] else 'absent'}")
    print(f"image: {status['image'] or '(not built yet)'}")
    print(f"stand-in: {'alive' if standin['alive'] else 'stopped'} (pid {standin['pid']})")
    served = status["mirror"]
    print(f"package mirror: {'alive' if served['alive'] else 'stopped'} (pid {served['pid']})")
    resolver = status["resolver"]
    print(f"resolver (dnsmasq): {'alive' if resolver['alive'] else 'stopped'} (pid {resolver['pid']})")
    if not status["boxes"]:
        print("no boxes")
    for box in status["boxes"]:
        alive = "alive" if box["alive"] else "DEAD"
        print(f"  {box['name']:8} {box['ipv4']:12} {box['ipv6']:10} {box['suite']:8} {box['flavor']:12} "
              f"{box['status']:9} pid {box['pid']} {alive}  netns {box['netns']}")
    return 0


def cmd_ssh(lab: Lab, args) -> int:
    box = lab.box(args.name)
    require(lab.config.netns)
    argv = in_netns(lab.config.netns, box.ssh_argv() + (["-t"] if not args.cmd else []) + args.cmd)
    os.execvp(argv[0], argv)


def cmd_exec(lab: Lab, args) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        print("usage: python -m lab exec -- ARGV...", file=sys.stderr)
        return 2
    require(lab.config.netns)
    full = in_netns(lab.config.netns, argv)
    os.execvp(full[0], full)


def cmd_build(lab: Lab, args) -> int:
    if args.force and image.is_built(lab.config.cache_dir, args.suite, args.image):
        import shutil
        shutil.rmtree(image.image_dir(lab.config.cache_dir, args.suite, args.image))
    print(lab.ensure_image(args.suite, args.image))
    return 0


def cmd_demo(lab: Lab, args) -> int:
    from .demo import run_demo

    return run_demo(lab, flavor=args.image)


COMMANDS = {"demo": cmd_demo, "up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh": cmd_ssh, "exec": cmd_exec, "build": cmd_build}
