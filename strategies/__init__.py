"""Strategies app."""
