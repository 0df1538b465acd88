//! printf-family formatting of a format string and Apple arm64 varargs.
