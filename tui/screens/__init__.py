"""The dashboard's screens: the main dashboard, chained sampling, and the new-run, help and quit dialogs."""
