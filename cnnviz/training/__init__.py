"""Training a network and keeping it: a run set up (``prepare``), the trainer (``loop``) and what it
reports (``progress``), the speed-run tricks (``tricks``, ``whitening``), the Train page's time
estimate (``estimate``) and a run's predicted peak memory (``memory``), runs in a background thread
behind a server-wide line (``jobs``) and stopped once their session is really gone (``reaper``),
saved checkpoints (``checkpoint``) and the Train page's named saves (``saving``), and what a trained
model got right and wrong (``results``)."""
