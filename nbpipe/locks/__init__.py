"""The lock file and Debian's archive under it: pins, their hashes, and what has left the
archive."""
