"""`tisdiss train` (to be written)."""
