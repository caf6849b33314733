"""VitalCheck: a BentoML model service for health-risk prediction (research and education; not a medical device)."""

__version__ = "0.1.0"
"""The package's version, the one source for pyproject.toml, the OpenAPI document and the docs page."""
