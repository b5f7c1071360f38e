"""The model zoo: registry data and cache status, verified downloads, and the one loader
that turns a model name or path into a ready model. Imports only the model and util layers."""
