"""xAPI statements as platforms send them, and the change each makes to a course activity."""
