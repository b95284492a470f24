"""The console's model of what happened: the server state built from events,
request filters, recordings and replay, and the sanitizing of untrusted text
where it enters."""
