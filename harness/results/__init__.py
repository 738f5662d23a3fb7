"""Run folders: validated records appended as they are taken, and the run manifest."""
