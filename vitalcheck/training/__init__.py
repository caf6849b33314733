"""Training code for VitalCheck (not installed in the Bento): loaders, trainers, metrics, cards, CLI.

Run ``python -m vitalcheck.training --help``. Importing this package imports nothing heavy.
"""
