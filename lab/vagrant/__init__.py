"""Vagrant on top of the lab: a local offline libvirt box, libvirtd inside the lab namespace,
and thin wrappers around `vagrant` and `pyinfra` (`python -m lab.vagrant --help`)."""
