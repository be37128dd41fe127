"""Helpers beneath every app: they know Django and the standard library, no model of Keyvault.

Anything here may be imported from any layer (docs/architecture.md); nothing here imports a
Keyvault app, so a helper that needs one belongs to that app instead.
"""
