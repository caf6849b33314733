"""Fault, load and soak tests of VitalCheck against a real `bentoml serve` on 127.0.0.1 (`make reliability`).

Every script here starts its own server (never two at once), sends traffic to the loopback
interface only, and bounds its request loops in count and time. Results go to
``reliability/results/*.json``; docs/RELIABILITY.md reports the figures.
"""
