"""One function per scheduled job; each takes a Runtime and returns a frozen report."""
