"""The entry points Claude Code calls (pre/post tool use, stop, session start/end) and the audit log."""
