"""`tisdiss bench` (to be written)."""
