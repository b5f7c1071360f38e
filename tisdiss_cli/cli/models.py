"""`tisdiss models` (to be written)."""
