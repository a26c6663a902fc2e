"""Training a network and keeping it: the trainer (``loop``), the speed-run tricks (``tricks``), runs
in a background thread behind a server-wide line (``jobs``), saved checkpoints (``checkpoint``) and
what a trained model got right and wrong (``results``)."""
