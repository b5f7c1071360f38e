"""`tisdiss separate` (to be written)."""
