"""Accounts: users, workspaces (the tenant), members, invitations, API keys, broker credentials."""
