"""Ways to execute the pending runs of a sweep other than one after another in this process."""
