"""Everything that talks to Claude Code: hook entry points and the tool policy."""
