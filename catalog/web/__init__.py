"""The web application for clerks, supervisors and auditors (issue 7: in progress)."""
from catalog.web.app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]
