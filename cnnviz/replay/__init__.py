"""Looking back at a run: the map of what the network learned (projection) and the pictures for slides
(slides)."""
