"""The libvirt network and storage pool of the local Vagrant mode (ours alone, under our names).

Network: isolated (no <forward>: libvirt turns no forwarding on), DNS off (dnsmasq would try
the host's resolvers, which the lab cannot reach), DHCP for the VMs. Its bridge lives in the
lab namespace, whose own address 10.77.0.1 (the Mailgun stand-in) the VMs reach through their
default route 10.77.1.1 - delivered locally, nothing is forwarded. The prober (10.77.0.2)
reaches the VMs the same way.
"""
from __future__ import annotations

import shutil
import tempfile

from .daemons import virsh
from .paths import MANAGEMENT_NET, VagrantPaths


def network_xml(paths: VagrantPaths) -> str:
    return f"""<network>
  <name>{paths.network_name}</name>
  <bridge name='{paths.bridge_name}' stp='off' delay='0'/>
  <dns enable='no'/>
  <ip address='{MANAGEMENT_NET}.1' netmask='255.255.255.0'>
    <dhcp><range start='{MANAGEMENT_NET}.10' end='{MANAGEMENT_NET}.250'/></dhcp>
  </ip>
</network>
"""


def ensure_network(paths: VagrantPaths) -> None:
    if virsh("net-info", paths.network_name, check=False).returncode != 0:
        with tempfile.NamedTemporaryFile("w", suffix=".xml") as xml:
            xml.write(network_xml(paths))
            xml.flush()
            virsh("net-define", xml.name)
    if not _field_is(virsh("net-info", paths.network_name).stdout, "Active", "yes"):
        virsh("net-start", paths.network_name)


def ensure_pool(paths: VagrantPaths) -> None:
    paths.pool_dir.mkdir(parents=True, exist_ok=True)
    if virsh("pool-info", paths.pool_name, check=False).returncode != 0:
        virsh("pool-define-as", paths.pool_name, "dir", "--target", str(paths.pool_dir))
    if not _field_is(virsh("pool-info", paths.pool_name).stdout, "State", "running"):
        virsh("pool-start", paths.pool_name)


def _field_is(info: str, field: str, value: str) -> bool:
    """`virsh net-info` / `pool-info` print "Field:   value" lines."""
    for line in info.splitlines():
        name, _, rest = line.partition(":")
        if name.strip().lower() == field.lower():
            return rest.strip().lower() == value
    return False


def our_domains() -> list[str]:
    result = virsh("list", "--all", "--name", check=False)
    return [name for name in result.stdout.split() if name.startswith("lockdown_")]


def volumes(paths: VagrantPaths) -> list[str]:
    result = virsh("vol-list", paths.pool_name, check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def remove_all(paths: VagrantPaths) -> list[str]:
    """Remove leftover domains, the pool (with its volumes) and the network; returns problems."""
    problems = []
    for domain in our_domains():
        virsh("destroy", domain, check=False)
        result = virsh("undefine", domain, "--nvram", check=False)
        if result.returncode != 0 and virsh("undefine", domain, check=False).returncode != 0:
            problems.append(f"domain {domain}: {result.stderr.strip()}")
    if virsh("pool-info", paths.pool_name, check=False).returncode == 0:
        for volume in volumes(paths):
            virsh("vol-delete", volume, "--pool", paths.pool_name, check=False)
        virsh("pool-destroy", paths.pool_name, check=False)
        virsh("pool-undefine", paths.pool_name, check=False)
    shutil.rmtree(paths.pool_dir, ignore_errors=True)
    if virsh("net-info", paths.network_name, check=False).returncode == 0:
        virsh("net-destroy", paths.network_name, check=False)
        result = virsh("net-undefine", paths.network_name, check=False)
        if result.returncode != 0:
            problems.append(f"network {paths.network_name}: {result.stderr.strip()}")
    return problems
