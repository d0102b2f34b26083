"""Robots: the robot author's API and runner (modules named ``_*.py``), and the unit's own robots.

Arrives with the robot-runtime issue.
"""
