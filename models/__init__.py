"""The tisdiss model zoo, as data: registry.toml, one card per model, bundled weights."""
