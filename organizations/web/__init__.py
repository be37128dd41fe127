"""The team pages of organizations: the org switcher, settings, members and invitations."""
