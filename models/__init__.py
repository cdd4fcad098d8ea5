"""Offline training of Park Edge's forecasters (pandas, scikit-learn, skl2onnx).

``python -m models.train --all`` rebuilds every shipped ``<target>.onnx`` with
its model card from the vendored data in ``data/``. Nothing here runs on a
gateway; the runtime is ``edge.forecast``.
"""
