"""Built-in methods, one file each: every module here is imported when the method registry is first used."""
