"""The background workers (poller, expirer, renewer, webhook deliverer) that the runtime runs in
one TaskGroup under leases; each module owns one worker and its pass over the database."""
