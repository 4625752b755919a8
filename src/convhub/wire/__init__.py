"""The wire contract: declarations and signing that the server and the client share (stdlib only)."""
