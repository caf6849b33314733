"""The two FastAPI contenders, which live here and not in the product.

* :mod:`benchmarks.apps.original_design`: the design VitalCheck grew from, issue #14's baseline
  (lifespan + ``app.state`` + ``Depends``; each route calls the unpickled pipeline's
  ``predict_proba`` / ``predict`` on a DataFrame of the request, no explanation);
* :mod:`benchmarks.apps.reload_per_request`: the anti-pattern, the same routes unpickling inside every handler.

Both validate requests with :mod:`vitalcheck.schemas` and build the DataFrame with
:func:`vitalcheck.predictors.tabular.records_to_frame`, but compute with the pickles themselves, not
with VitalCheck's compiled forms; the MRI upload goes through :meth:`vitalcheck.api.VitalCheckAPI.brain_tumor`
(the same ONNX graph and image path as VitalCheck).
"""
