# Example production inventory: copy it (e.g. to inventories/mine.py), edit, then run
#     export LOCKDOWN_RELAY_LOGIN=postmaster@mg.example.com LOCKDOWN_RELAY_PASSWORD=...
#     pyinfra inventories/mine.py deploys/mail.py
# Every host data key and its default: the README's "Host data" table (pyinfra_lockdown/settings.py).
# Never put the relay password here: it comes from the environment or relay_credentials_file.

mail_servers = (
    [
        # (host, per-host data)
        ("mx1.example.com", {"firewall_allowed": ["ssh", "http/tcp", "https/tcp"]}),
        ("app2.example.com", {}),
    ],
    {
        # group data for every host above
        "ssh_user": "deploy",
        "_sudo": True,
        # Check host keys against a known_hosts file you keep (ssh-keyscan once, verify, commit).
        "ssh_strict_host_key_checking": "yes",
        # "ssh_known_hosts_file": "inventories/known_hosts",
        # mailgun | ses | sendgrid | postmark | brevo | custom: README "Relay providers"
        "relay_provider": "mailgun",
        "relay_region": "us",  # Mailgun: us or eu; SES: the AWS region (required)
        "relay_port": 587,  # 587 STARTTLS, 465 implicit TLS, 2525 when 587 is filtered
        "mail_root_forward": "ops@example.com",
        # "relay_credentials_file": "~/.config/lockdown/relay.env",  # chmod 600, outside the repo
    },
)
