"""``armguard proxy``: an ARM-compatible endpoint that gives tools nobody can change the
coordinator's discipline (turns per lock key, absorbed refusals, no silent lost updates)."""
