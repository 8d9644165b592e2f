"""Errors a user fixes outside the code (a missing tool, a busy port, a wrong path, a full disk)."""

# What the OS (through Java, Python or SQLite) says when storage refuses a write, and what it means.
STORAGE_FAULTS = {
    "No space left on device": "the disk is full",
    "database or disk is full": "the disk is full",
    "Disk quota exceeded": "the disk quota is used up",
    "Read-only file system": "the file system is read-only",
    "attempt to write a readonly database": "the file system is read-only",
    "Permission denied": "writing is not permitted",
    "AccessDeniedException": "writing is not permitted",
}


class SetupError(Exception):
    """One line that says what is wrong and how to fix it; CLIs print it without a traceback."""


def first_line(error: object, limit: int = 300) -> str:
    """An error's first line (at most `limit` characters), or its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def error_text(error: object) -> str:
    """All an error says: its message, the JVM stack trace PySpark keeps of a captured Java exception, and
    the same of every exception it was raised from or during and of the Java cause PySpark keeps."""
    parts, seen, pending = [], set(), [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), str(getattr(current, "_stackTrace", "") or "")]
        pending += [getattr(current, name, None) for name in ("__cause__", "__context__", "_cause")]
    return "\n".join(parts)


def storage_fault(error: object) -> str | None:
    """'the disk is full (No space left on device)' when an error (a Java stack trace included) names a
    storage fault, else None."""
    text = error_text(error)
    for words, meaning in STORAGE_FAULTS.items():
        if words in text:
            return f"{meaning} ({words})"
    return None
