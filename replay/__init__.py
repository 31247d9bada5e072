"""Recorded sessions: replay against today's harness, the demo, transcripts, a local Messages API."""
