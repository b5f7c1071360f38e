"""Separating recordings: the :class:`~tisdiss_cli.separation.separator.Separator` API, audio
I/O, chunked overlap-add, adaptive depth and RTF calibration. Imports zoo, model and util."""
