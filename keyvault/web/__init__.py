"""The team pages of provider keys, proxy tokens and the audit log."""
