"""The two ways into the archive: the `evidence` command line (evidence.cli) and the web application
(evidence.web). Both call the same catalog and storage functions for the same act; neither holds SQL."""
