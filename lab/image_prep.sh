#!/bin/sh
# Runs once on the freshly built rootfs ($1), as mmdebstrap's customize hook.
# Per-box files (hostname, hosts, SSH authorized key) are written at box creation instead,
# so the cached image holds no key and no box identity.
set -eu
root="$1"

# systemd creates a fresh machine id at every boot of every box.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# Nothing answers DNS in the lab: lookups must fail at once (see docs in lab/README.md).
rm -f "$root/etc/resolv.conf"
echo "nameserver 10.77.0.1" > "$root/etc/resolv.conf"
echo "unnamed-box" > "$root/etc/hostname"

# The deploy user: SSH key login (key added per box), passwordless sudo.
chroot "$root" useradd --create-home --shell /bin/bash deploy
install -d -m 700 -o "$(chroot "$root" id -u deploy)" -g "$(chroot "$root" id -g deploy)" \
    "$root/home/deploy/.ssh"
echo "deploy ALL=(ALL) NOPASSWD:ALL" > "$root/etc/sudoers.d/deploy"
chmod 0440 "$root/etc/sudoers.d/deploy"

# Units that cannot work in a container and would only add noise to `systemctl --failed`.
for unit in systemd-networkd-wait-online.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# cron is installed (as on a Debian VPS, so the logwatch step finds a cron daemon and installs
# none) but never started: no daily job (logwatch's report, unconfigured) may mail the
# stand-in in the middle of a test that counts its messages.
ln -sf /dev/null "$root/etc/systemd/system/cron.service"

# Smaller image: package lists and downloaded packages are useless without a mirror.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb
