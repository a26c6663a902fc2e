"""Networks from a short spec: the spec language (``spec``), the PyTorch model it builds (``build``),
and its per-layer table of shapes, parameters and multiply-adds (``summary``)."""
