"""The tool policy: which tool calls the agent may make (tables: tools, commands, git, paths)."""
