"""Vault: the unit's credentials and session state, encrypted at rest, and redaction of secrets.

Arrives with the vault issue.
"""
