"""Data: find files, decode them once, and make synthetic solder joints."""
