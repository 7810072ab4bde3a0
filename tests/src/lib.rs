//! Helpers for end-to-end tests: locating binaries, temp data dirs.
