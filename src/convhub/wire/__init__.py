"""The wire contract that the server and the client share: declarations and signing.

Standard library only: ``convhub.client`` ships this package without the server.
"""
