"""Training a network and keeping it: a run set up (``prepare``), the trainer (``loop``) and what it
reports (``progress``), the speed-run tricks (``tricks``), the Train page's time estimate
(``estimate``), runs in a background thread behind a server-wide line (``jobs``), saved checkpoints
(``checkpoint``) and what a trained model got right and wrong (``results``)."""
