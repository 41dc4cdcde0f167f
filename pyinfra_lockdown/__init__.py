"""lockdown: a send-only Postfix relaying through Mailgun (or another relay), behind ufw."""
