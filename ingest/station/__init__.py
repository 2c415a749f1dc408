"""`evidence station watch`: the unattended station (service), the device states and status file it writes
(status), its health and alarms (health), the dock watcher, the kiosk's status endpoint, USB identity, device
clearing, tagging at the dock and the staging sweep."""
