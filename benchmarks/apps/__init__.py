"""The two FastAPI contenders, which live here and not in the product.

* :mod:`benchmarks.apps.reload_per_request`: the anti-pattern, unpickling inside every handler;
* :mod:`benchmarks.apps.original_design`: the design VitalCheck grew from (lifespan + ``app.state`` + ``Depends``).

Both reuse :mod:`vitalcheck.schemas`, :mod:`vitalcheck.predictors` and :class:`vitalcheck.api.VitalCheckAPI`,
so the compute behind every route is the one VitalCheck runs; only the serving around it differs.
"""
