"""Celery tasks: thin adapters that call the engines (which never import Celery themselves)."""
