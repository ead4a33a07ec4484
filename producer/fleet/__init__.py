"""The producer's view of the fleet: the typed client, the local fleet, and the fleet-wide status."""

from .client import Fleet, Study, StudyFailed, StudyProgress

__all__ = ["Fleet", "Study", "StudyFailed", "StudyProgress"]
