"""The whole pipeline at once: `make demo` (every stage once, in one process) and `make up` (supervised services)."""
