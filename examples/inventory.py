# Your hosts and their host data. Every key, its default and what it does:
# the "Host data" table in lockdown's README (pyinfra_lockdown/settings.py).
# Never put the relay password here: it comes from the environment or relay_credentials_file.
mail_servers = (
    [
        ("mx1.example.com", {"firewall_allowed": ["ssh", "http/tcp", "https/tcp"]}),
        ("app2.example.com", {}),
    ],
    {
        "ssh_user": "deploy",
        "ssh_strict_host_key_checking": "yes",
        "mail_root_forward": "ops@example.com",  # required: where root's mail goes
        "relay_provider": "mailgun",  # or ses, sendgrid, postmark, brevo, custom (README)
        "relay_region": "us",  # Mailgun: us or eu; SES: the AWS region (required)
        # "relay_port": 2525,  # when the network filters 587
        # "logwatch": True,  # daily logwatch report to mail_root_forward, through the relay
        # "relay_credentials_file": "~/.config/lockdown/relay.env",  # chmod 600
    },
)

# Optional: a small VPS at another provider that probes the others from outside in the audit.
# probes = ["probe.example.net"]
