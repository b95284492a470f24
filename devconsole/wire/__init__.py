"""What travels between the two sides: event definitions and their encoding,
the fork-server messages, the catalogue's schema, the path rules both sides
apply. Imports neither side."""
