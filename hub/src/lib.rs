//! Hub library.
