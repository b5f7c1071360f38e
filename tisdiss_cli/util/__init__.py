"""The bottom layer: small helpers every other layer may use (atomic file writes, process
tuning, SI-SNR, device choice and timing). Imports nothing else from tisdiss."""
