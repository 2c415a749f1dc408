"""The web application for clerks, supervisors and auditors (issue 7: in progress)."""
from evidence.web.app import create_app
from evidence.web.deps import WebConfig

__all__ = ["WebConfig", "create_app"]
