"""The producer's view of the fleet: the typed client, lifecycle jobs, the local fleet, and the fleet-wide status."""

from .client import Fleet, Study, StudyFailed, StudyProgress
from .lifecycle import JobFailed, JobProgress, LifecycleJob

__all__ = ["Fleet", "JobFailed", "JobProgress", "LifecycleJob", "Study", "StudyFailed", "StudyProgress"]
