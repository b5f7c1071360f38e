"""The network and its files: configuration, layers, the TISDiSS network, checkpoints
(tisdiss format and ESPnet import). Imports only :mod:`tisdiss_cli.util`."""
