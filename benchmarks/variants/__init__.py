"""Prototypes of product changes, measured by the benchmarks but not part of the product.

:mod:`benchmarks.variants.service` subclasses the shipped ``service.VitalCheck`` and replaces only
the single-record risk endpoints (same routes, same request and response bodies), so a lever can
be measured against the shipped service in the same run before the lead moves it into the product.
"""
