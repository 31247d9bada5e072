"""The scoring sandbox's code, and only it: the score entry and the evaluators (stdlib, torch, numpy)."""
