"""The producer's view of the fleet: the typed client, lifecycle jobs, the local fleet, and the fleet-wide status."""

from simfleet.producer.fleet.client import Fleet, Study, StudyProgress
from simfleet.producer.fleet.lifecycle import JobProgress, LifecycleJob
from simfleet.shared.errors import JobFailed, StudyFailed

__all__ = ["Fleet", "JobFailed", "JobProgress", "LifecycleJob", "Study", "StudyFailed", "StudyProgress"]
