"""xAPI intake: a write-only LRS statements resource, so any platform that pushes to an LRS feeds Viva Learning."""
