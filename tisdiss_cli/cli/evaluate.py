"""`tisdiss evaluate` (to be written)."""
