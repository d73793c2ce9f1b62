"""The console's screens: the payments board (home), the cashier, payment detail, webhooks,
subscriptions and the audit log."""
