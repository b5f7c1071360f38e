"""Separating recordings: the :class:`~tisdiss_cli.separation.separator.Separator` API and its
front-ends (arrays, files, pipes, live), the one engine (:mod:`.streaming`, :mod:`.chunking`),
the depth choice, outputs, adaptive depth and RTF calibration. Imports audio, zoo, model and util."""
