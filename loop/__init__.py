"""The headless loop: Claude Code driven through claude-agent-sdk under the same settings and hooks."""
