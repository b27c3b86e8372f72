"""Reference profiles measured by `ldmpick profile` on named machines (see README.md here)."""
