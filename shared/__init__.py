"""Pieces shared by producers and workers: errors, settings, message contracts."""
