"""Desk: the web site where community staff query the snapshot (masked, scoped, audited).

Arrives with the desk issue.
"""
