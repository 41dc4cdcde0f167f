#!/bin/sh
# Runs once on the freshly built VM rootfs ($1), as mmdebstrap's customize hook.
# $2 = Vagrant's insecure public key file (from Debian's vagrant package).
set -eu
root="$1"
pubkey="$2"

# A fresh machine id and fresh SSH host keys at the first boot of every VM.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-host-keys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../ssh-host-keys.service "$root/etc/systemd/system/multi-user.target.wants/ssh-host-keys.service"

# Offline network: nothing answers DNS (lookups fail at once); the lab's Mailgun stand-in
# is 10.77.0.1, reached through the VM's default route (the lab namespace).
rm -f "$root/etc/resolv.conf"
echo "nameserver 10.77.0.1" > "$root/etc/resolv.conf"
echo "mail" > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	mail.lab.test mail
10.77.0.1	smtp.mailgun.lab.test
::1	localhost ip6-localhost ip6-loopback
HOSTS

# DHCP on the first NIC, by systemd-networkd (no ifupdown: its postfix hook fails without main.cf).
# The management network is isolated (its DHCP offers no router): the only route out is to the
# lab's own subnet through the lab namespace (10.77.1.1), where the stand-in and prober live.
cat > "$root/etc/systemd/network/50-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[Route]
Destination=10.77.0.0/24
Gateway=10.77.1.1
NET
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"

# Root file system on the virtio disk (direct kernel boot passes root=/dev/vda too).
echo "/dev/vda / ext4 errors=remount-ro 0 1" > "$root/etc/fstab"

# The vagrant user: Vagrant's insecure key, passwordless sudo.
chroot "$root" useradd --create-home --shell /bin/bash vagrant
install -d -m 700 "$root/home/vagrant/.ssh"
install -m 600 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo "vagrant ALL=(ALL) NOPASSWD:ALL" > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"

# Package lists and downloaded packages are useless without a mirror.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb
